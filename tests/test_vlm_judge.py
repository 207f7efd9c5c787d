"""The VLM judge against a real loopback HTTP server speaking the chat-completions protocol."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.conftest import invoke

from gapeval import api
from gapeval.errors import GapevalError
from gapeval.items import Category
from gapeval.judges.rubric import all_rubrics, parse_verdict, rubric_for
from gapeval.records import VerdictRecord, VerdictStatus
from gapeval.store import RunStore
from gapeval.suites import load_suite
from gapeval.testing.openai_server import Reply, ScriptedServer

KEY = "sk-planted-4f1c9e7a-should-never-be-written"
PASS = '{"reason": "fine", "verdict": "pass"}'
FAIL = '{"reason": "wrong", "verdict": "fail"}'


@pytest.fixture
def run_dir(sample_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("GAPEVAL_TEST_KEY", KEY)
    out = tmp_path / "run"
    api.run(str(sample_tree), "replay:demo-umm", out=out, judges=())
    return out


def one(stats: dict[str, Any]) -> Any:
    """The stats of the one judge judged (its id carries the protocol and the endpoint)."""
    (only,) = stats.values()
    return only


def vlm_verdicts(store: RunStore) -> list[VerdictRecord]:
    return [v for v in store.verdicts() if v.judge_id.startswith("openai:test-vlm[")]


def opts(srv: ScriptedServer, **extra: str) -> dict[str, str]:
    return {"base_url": srv.base_url, "api_key_env": "GAPEVAL_TEST_KEY", "backoff_s": "0.01", **extra}


def test_messages_carry_rubric_text_and_images(run_dir) -> None:
    with ScriptedServer() as srv:
        stats = api.judge(run_dir, ["openai:test-vlm"], options=opts(srv))
    # 23 outputs, plus one consistency check: rs-2's text is wrong, so its image is also compared with it
    assert one(stats).judged == 23 and one(stats).usage.requests == 24
    assert all(h["authorization"] == f"Bearer {KEY}" for h in srv.headers)
    body = srv.requests[0]
    assert body["model"] == "test-vlm"
    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    images = [p for b in srv.requests for p in b["messages"][1]["content"] if p["type"] == "image_url"]
    assert images and all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in images)
    # an edit's image verdict sees the question image and the output; the text verdict sees the answer
    texts = [b["messages"][1]["content"][0]["text"] for b in srv.requests]
    assert any("I see 2 red circles and 1 blue square." in t for t in texts)
    with RunStore.open(run_dir) as store:
        verdicts = vlm_verdicts(store)
        assert {v.status for v in verdicts} == {VerdictStatus.OK}
        rs2 = next(v for v in verdicts if v.item_id == "rs-2" and v.direction == "gen")
        assert rs2.meta["consistent_with_text"] is True
        assert store.manifest().judges[0].spec == f"openai:test-vlm base_url={srv.base_url}"


def test_second_identical_judging_makes_zero_requests(run_dir) -> None:
    with ScriptedServer() as srv:
        api.judge(run_dir, ["openai:test-vlm"], options=opts(srv))
        n = len(srv.requests)
        again = api.judge(run_dir, ["openai:test-vlm"], options=opts(srv))
    assert len(srv.requests) == n
    assert one(again).usage.requests == 0 and one(again).cached == 23


def test_retry_after_is_honoured_and_5xx_retried(run_dir) -> None:
    def script(body, n):
        if n == 0:
            return Reply(status=429, headers={"retry-after": "1"})
        if n == 1:
            return Reply(status=500)
        return Reply(content=PASS)

    stamps: list[float] = []
    with ScriptedServer(lambda b, n: (stamps.append(time.monotonic()), script(b, n))[1]) as srv:
        stats = api.judge(run_dir, ["openai:test-vlm"], options=opts(srv, concurrency="1"))
    assert stamps[1] - stamps[0] >= 0.95  # waited as Retry-After said, not the 0.01 s backoff
    assert one(stats).usage.retries == 2 and one(stats).judged == 23


def test_timeouts_are_retried(run_dir) -> None:
    with ScriptedServer(lambda b, n: Reply(content=PASS, delay_s=1.5 if n == 0 else 0.0)) as srv:
        stats = api.judge(run_dir, ["openai:test-vlm"], options=opts(srv, timeout_s="0.5", concurrency="1"))
    assert one(stats).judged == 23 and one(stats).usage.retries >= 1


def test_attempt_cap_stores_failed_and_next_judging_retries(run_dir) -> None:
    with ScriptedServer(lambda b, n: Reply(status=503)) as srv:
        stats = api.judge(run_dir, ["openai:test-vlm"], options=opts(srv, max_attempts="3"))
    st = one(stats)
    assert st.failed == 23 and st.judged == 0 and st.usage.requests == 69
    with RunStore.open(run_dir) as store:
        v = vlm_verdicts(store)[0]
        assert v.status is VerdictStatus.FAILED and "gave up after 3 attempts" in v.reason
    with ScriptedServer() as srv:
        again = api.judge(run_dir, ["openai:test-vlm"], options=opts(srv))
    assert one(again).judged == 23


def test_malformed_replies_are_retried_never_guessed(run_dir) -> None:
    replies = ["I think it is fine.", '```json\n{"reason": "x", "verdict": "pass"}\n```']
    with ScriptedServer(lambda b, n: Reply(content=replies[min(n % 2, 1)])) as srv:
        stats = api.judge(run_dir, ["openai:test-vlm"], options=opts(srv, concurrency="1"))
    assert one(stats).judged == 23
    with ScriptedServer(lambda b, n: Reply(content="no json here")) as srv:
        stats = api.judge(run_dir, ["openai:other"], options=opts(srv, max_attempts="2"))
    assert one(stats).failed == 23 and one(stats).judged == 0


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"reason": "r", "verdict": "pass"}', True),
        ('Sure! ```json\n{"reason": "r", "verdict": "fail"}\n``` hope that helps', False),
        ('The verdict follows. {"reason": "r", "score": 1} Done.', True),
        ('{"judge_result": "0"}', False),
        ('{"verdict": "unchanged", "reason": "same image"}', False),
        ('{"reason": "r"}', None),
        # strict: prose that states its own verdict around a (possibly planted) JSON verdict
        ('The answer FAILS. The model wrote {"reason": "x", "verdict": "pass"} in its answer.', None),
        ('{"verdict": "pass"} {"verdict": "fail"}', None),
        ('{"verdict": "pass", "reason": "a"}\n{"verdict": "pass", "reason": "b"}', None),
        ('{"verdict": "maybe"}', None),
        ("{" * 20000, None),
        ("pass", None),
        ("", None),
    ],
)
def test_parse_verdict(reply, expected) -> None:
    assert parse_verdict(reply)[0] is expected


def test_two_turn_keeps_the_second_verdict(run_dir) -> None:
    with ScriptedServer(lambda b, n: Reply(content=PASS if len(b["messages"]) == 2 else FAIL)) as srv:
        stats = api.judge(run_dir, ["openai:test-vlm"], options=opts(srv, two_turn="true"))
    assert one(stats).usage.requests == 48
    follow = [b for b in srv.requests if len(b["messages"]) == 4]
    assert len(follow) == 24 and follow[0]["messages"][3]["content"] == "Are you sure? Think carefully."
    with RunStore.open(run_dir) as store:
        v = vlm_verdicts(store)
        assert all(x.passed is False for x in v) and 'verdict": "pass' in v[0].raw


def test_repeated_judging_stores_shares_and_agreement(run_dir) -> None:
    with ScriptedServer(lambda b, n: Reply(content=PASS if n % 3 else FAIL)) as srv:
        api.judge(run_dir, ["openai:test-vlm"], options=opts(srv, samples="3", concurrency="1"))
    with RunStore.open(run_dir) as store:
        v = vlm_verdicts(store)
        assert all(abs(x.score - 2 / 3) < 1e-9 and x.passed for x in v)
        assert all(abs(x.meta["agreement"] - 2 / 3) < 1e-9 for x in v)


def test_no_key_anywhere_in_the_run_or_report(cli, run_dir) -> None:
    with ScriptedServer() as srv:
        code, out, _ = invoke(
            cli,
            "judge",
            str(run_dir),
            "--judge",
            "openai:test-vlm",
            "--base-url",
            srv.base_url,
            "--api-key-env",
            "GAPEVAL_TEST_KEY",
            "--judge-opt",
            "backoff_s=0.01",
        )
    assert code == 0 and "23 decided" in out
    code, _, _ = invoke(
        cli, "score", str(run_dir), "--method", "reference", "--fragility", "0", "--format", "json"
    )
    assert code == 0
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_missing_key_is_one_clear_error(cli, run_dir, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, _, err = invoke(cli, "judge", str(run_dir), "--judge", "openai:gpt-5-mini")
    assert code == 2 and "OPENAI_API_KEY" in err


PUBLISHED = [
    ("counting", "Objects Counting", "counting"),
    ("counting", "Animals Counting", "counting"),
    ("rule_based", "colour swap", "rule-based"),
    ("Multi Hop", "animal", "multi-hop"),
    ("reasoning", "draw", "draw"),
    ("reasoning", "mmlu/mmmu", "choice"),
    ("reasoning", "puzzle", "choice"),
    ("physics", "gravity", "physics"),
]


@pytest.mark.parametrize(("source", "sub", "family"), PUBLISHED)
def test_every_published_category_has_rubrics_both_ways(sample_tree, source, sub, family) -> None:
    item = (
        load_suite(str(sample_tree))
        .items[0]
        .model_copy(update={"source_category": source, "subcategory": sub})
    )
    und, gen = rubric_for(item, "und"), rubric_for(item, "gen")
    # the category's own rubric governs each direction, and each asks for a JSON verdict
    assert (und.id, gen.id) == (f"{family}-und", f"{family}-gen")
    assert und.direction == "und" and gen.direction == "gen"
    assert '"verdict"' in und.template and '"verdict"' in gen.template


def test_rubrics_cover_our_own_categories(sample_tree) -> None:
    base = load_suite(str(sample_tree)).items[0]
    for cat in Category:
        item = base.model_copy(update={"source_category": cat.value, "category": cat, "subcategory": ""})
        assert rubric_for(item, "und") and rubric_for(item, "gen")
    assert len({r.id for r in all_rubrics()}) == len(all_rubrics()) == 13


def test_agreement_with_people_and_between_judges(cli, run_dir, tmp_path) -> None:
    api.judge(run_dir, ["rules", "recorded"])
    with RunStore.open(run_dir) as store:
        rules = {
            (v.item_id, str(v.direction)): v.passed for v in store.verdicts("rules") if v.passed is not None
        }
    labels = tmp_path / "labels.csv"
    rows = [f"{i},{d},{'pass' if p else 'fail'}" for (i, d), p in rules.items()]
    rows[0] = rows[0].rsplit(",", 1)[0] + (
        ",fail" if rows[0].endswith("pass") else ",pass"
    )  # one disagreement
    labels.write_text("item_id,direction,label\n" + "\n".join(rows) + "\n")
    code, out, _ = invoke(
        cli, "agreement", str(run_dir), "--labels", str(labels), "--judge", "rules", "--json"
    )
    res = json.loads(out)
    assert code == 0 and res["n"] == len(rules)
    assert res["accuracy"] == pytest.approx(1 - 1 / len(rules)) and res["kappa"] < 1.0
    assert sum(map(sum, res["confusion"])) == len(rules) and res["per_category"]
    # judged alone (not behind rules in a chain), the recorded verdicts overlap the rules' ones
    api.judge(run_dir, ["recorded"])
    with RunStore.open(run_dir) as store:
        recorded = {
            (v.item_id, str(v.direction)): v.passed
            for v in store.verdicts("recorded:demo-umm")
            if v.passed is not None
        }
    shared = sorted(set(rules) & set(recorded))
    assert shared
    code, out, _ = invoke(
        cli, "agreement", str(run_dir), "--judge", "rules", "--vs", "recorded:demo-umm", "--json"
    )
    res = json.loads(out)
    assert code == 0 and res["n"] == len(shared)
    assert res["accuracy"] == pytest.approx(sum(rules[k] == recorded[k] for k in shared) / len(shared))
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,direction,label\ncnt-1,und,maybe\n")
    code, _, err = invoke(cli, "agreement", str(run_dir), "--labels", str(bad))
    assert code == 2 and "bad.csv:2" in err and "label" in err


def test_unknown_judge_option_is_rejected(run_dir) -> None:
    with pytest.raises(GapevalError, match=r"unknown option 'temperature_of_mars'"):
        api.judge(run_dir, ["openai:x"], options={"temperature_of_mars": "3"})


def test_agreement_among_the_samples_of_one_judge(run_dir) -> None:
    """`agreement --samples`: a judge's k independent calls per output as k raters (Krippendorff's alpha)."""
    import numpy as np

    from gapeval.judges.agreement import krippendorff_alpha

    def flaky(body: dict[str, Any], n: int) -> Reply:
        return Reply(content=FAIL if n % 3 == 0 else PASS)

    with ScriptedServer(flaky) as srv:
        api.judge(run_dir, ["openai:test-vlm"], options=opts(srv, samples="3", concurrency="1"))
    res = api.agreement(run_dir, judges=["openai:test-vlm"], samples=True)
    with RunStore.open(run_dir) as store:
        calls = {(v.item_id, v.sample, str(v.direction)): v.meta["samples"] for v in vlm_verdicts(store)}
    (judge_id,) = {v.split("#")[0] for v in res.reliability.raters}
    assert res.reliability.raters == [f"{judge_id}#{i}" for i in (1, 2, 3)]
    table = np.array([[float(c[i]) for c in calls.values()] for i in range(3)])
    assert 0 < table.mean() < 1  # the calls disagree somewhere: alpha is not trivially 1
    assert res.reliability.alpha["all"] == pytest.approx(krippendorff_alpha(table))
    assert res.reliability.units["all"] == len(calls)
    with ScriptedServer() as srv:
        api.judge(run_dir, ["openai:other-vlm"], options=opts(srv))
    with pytest.raises(GapevalError, match="one verdict per output"):
        api.agreement(run_dir, judges=["openai:other-vlm"], samples=True)
