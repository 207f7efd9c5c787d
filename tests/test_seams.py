"""The joins between stages: verdict identity, model identity on resume, adapters, executors, the API."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import textwrap
import warnings
from pathlib import Path

import pytest
from tests.conftest import TEST_KEY as KEY
from tests.conftest import invoke

import gapeval
from gapeval import api
from gapeval.errors import GapevalError
from gapeval.judges import rubric as rubric_mod
from gapeval.records import OutputStatus, VerdictStatus
from gapeval.store import RunStore
from gapeval.suites import load_suite
from gapeval.testing.openai_server import Reply, ScriptedServer

PASS = '{"reason": "fine", "verdict": "pass"}'
FAIL = '{"reason": "wrong", "verdict": "fail"}'
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_adapter.py"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GAPEVAL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def vlm_opts(srv: ScriptedServer, **extra: str) -> dict[str, str]:
    return {"base_url": srv.base_url, "api_key_env": "GAPEVAL_TEST_KEY", "backoff_s": "0.01", **extra}


ADAPTER = """
from PIL import Image
from gapeval.models.base import Capabilities, ImageOutput, TextOutput

class Model:
    name = "{name}"
    capabilities = Capabilities({caps})
    batch_size = {batch}

    @classmethod
    def from_spec(cls, arg, options, context):
        return cls()

    def describe(self):
        return {{"family": "{name}"}}

    def understand(self, requests):
{understand}

    def generate(self, requests):
{generate}
"""


def write_adapter(
    folder: Path, name: str, understand: str, generate: str, caps: str = "", batch: int = 8
) -> str:
    """A test adapter file; returns its model spec (``py:FILE:Model``)."""

    def body(code: str) -> str:
        return textwrap.indent(textwrap.dedent(code).strip(), " " * 8)

    path = folder / f"{name}.py"
    path.write_text(
        ADAPTER.format(
            name=name, caps=caps, batch=batch, understand=body(understand), generate=body(generate)
        )
    )
    return f"py:{path}:Model"


# -- verdict identity ---------------------------------------------------------------------------------


def test_rejudging_with_another_protocol_is_what_score_reads(replay_run) -> None:
    with ScriptedServer(lambda b, n: Reply(content=PASS)) as srv:
        first = api.judge(replay_run, ["openai:test-vlm"], options=vlm_opts(srv))
    with ScriptedServer(lambda b, n: Reply(content=FAIL)) as srv2:
        second = api.judge(replay_run, ["openai:test-vlm"], options=vlm_opts(srv2, samples="2"))
    (id1,), (id2,) = list(first), list(second)
    assert id1.startswith("openai:test-vlm[default]@127.0.0.1:") and "[samples=2]@" in id2
    # score follows the last judging: every decided output now fails
    latest = api.score([replay_run], method="mirt", n_boot=0).runs[0]
    assert latest.judges == [id2] and latest.protocols == {id2: "samples=2"}
    assert latest.overall.und_acc == 0.0 and latest.overall.gen_acc == 0.0
    # the earlier protocol's verdicts are still there, and selectable by id
    earlier = api.score([replay_run], judges=[id1], method="mirt", n_boot=0).runs[0]
    assert earlier.overall.und_acc == 1.0 and earlier.overall.gen_acc == 1.0
    # a bare openai:MODEL means the one used last
    assert api.score([replay_run], judges=["openai:test-vlm"], n_boot=0).runs[0].judges == [id2]


def test_editing_one_rubric_rejudges_only_what_it_governs(replay_run, monkeypatch) -> None:
    with ScriptedServer(lambda b, n: Reply(content=PASS)) as srv:
        api.judge(replay_run, ["openai:test-vlm"], options=vlm_opts(srv))
        rubrics = rubric_mod.all_rubrics()
        with RunStore.open(replay_run) as store:
            governed = [v for v in store.verdicts() if v.meta.get("rubric") == "counting-und"]
        assert governed
        edited = tuple(
            rubric_mod.load_rubric("edited", r.text + "\n# stricter wording\n")
            if r.id == "counting-und"
            else r
            for r in rubrics
        )
        monkeypatch.setattr(rubric_mod, "all_rubrics", lambda: edited)
        n = len(srv.requests)
        again = api.judge(replay_run, ["openai:test-vlm"], options=vlm_opts(srv))
    (st,) = again.values()
    assert len(srv.requests) - n == len(governed) == st.judged
    assert st.cached == 23 - len(governed)


def test_identical_outputs_in_one_pass_are_judged_once(tmp_path, home, monkeypatch) -> None:
    # Two answer samples per item that are word for word the same: one request each, both samples scored.
    model = write_adapter(
        tmp_path,
        "same",
        'return [TextOutput(text="two") for r in requests]',
        'return [ImageOutput(image=Image.new("RGB", (8, 8), "white")) for r in requests]',
    )
    monkeypatch.setenv("GAPEVAL_TEST_KEY", KEY)
    out = tmp_path / "run"
    api.run("shapes-v1-mini", model, out=out, samples_und=2, samples_gen=1, judges=())
    with ScriptedServer(lambda b, n: Reply(content=PASS)) as srv:
        stats = api.judge(out, ["openai:test-vlm"], options=vlm_opts(srv))
    (st,) = stats.values()
    # 96 items x (2 identical answers + 1 image) = 96 x 2 requests, plus the consistency check of each
    # multiple-choice item (its answer "two" names no option)
    n_choice = sum(1 for i in load_suite("shapes-v1-mini").items if i.refs.choice)
    assert st.deduplicated == 96 and st.usage.requests == 192 + n_choice and st.judged == 288
    with RunStore.open(out) as store:
        res = api.score([store.records()], n_boot=0).runs[0]
    assert res.overall.und_n == 96 and res.overall.und_acc == 1.0


# -- model identity on resume ---------------------------------------------------------------------------


def test_a_retrained_checkpoint_in_place_is_refused_and_a_noop_resume_loads_nothing(
    tmp_path, home, monkeypatch
) -> None:
    from gapeval.models.toy import ToyModel, shipped_checkpoint

    ckpt = tmp_path / "ckpt.pt"
    shutil.copy(shipped_checkpoint(), ckpt)
    out = tmp_path / "run"
    first = api.run("shapes-v1-mini", f"toy:{ckpt}", out=out)
    assert first.model_loaded and first.stats.done == 96 * 3

    def no_load(*a: object, **k: object) -> None:
        raise AssertionError("the model was loaded for a run with nothing to do")

    monkeypatch.setattr(ToyModel, "from_spec", classmethod(no_load))
    again = api.run("shapes-v1-mini", f"toy:{ckpt}", out=out)
    assert again.resumed and not again.model_loaded and again.stats.skipped_done == 96 * 3
    # "retraining" the checkpoint in place: the same path now holds another model
    ckpt.write_bytes(ckpt.read_bytes() + b"\0")
    with pytest.raises(GapevalError) as info:
        api.run("shapes-v1-mini", f"toy:{ckpt}", out=out)
    assert info.value.field == "spec.model_identity" and "manifest.json" in (info.value.file or "")
    with RunStore.open(out) as store:
        shipped = hashlib.sha256(shipped_checkpoint().read_bytes()).hexdigest()
        assert store.manifest().spec.model_identity["sha256"] == shipped
        assert len(store.outputs(OutputStatus.DONE)) == 96 * 3


# -- adapters -------------------------------------------------------------------------------------------


def test_a_house_style_adapter_runs_through_py(tmp_path, home, cli) -> None:
    # from __future__ import annotations + @dataclass: needs its module registered in sys.modules.
    out = tmp_path / "run"
    code, stdout, stderr = invoke(
        cli, "run", "shapes-v1-mini", "-m", f"py:{EXAMPLE}:MyModel", "-o", str(out), "--fragility", "0",
        "--label", "blank canvas",
    )  # fmt: skip
    assert code == 0, stderr
    assert "judges: scene (the suite's own" in stdout and "blank canvas" in stdout
    with RunStore.open(out) as store:
        m = store.manifest()
        assert m.spec.model_identity == {"adapter": "py:my_adapter:MyModel", "weights": None}
        assert m.label == "blank canvas" and m.model_description["family"] == "my-model"
        outs = store.outputs()
    edits = [o for o in outs if o.status is OutputStatus.UNSUPPORTED]
    assert edits and all(o.direction == "gen" for o in edits)
    assert all(o.wall_s is not None and o.wall_s >= 0 for o in outs if o.status is OutputStatus.DONE)
    res = api.score([out], n_boot=0).runs[0]
    assert res.overall.gen_unsupported == len(edits)


def test_capability_gating_failures_and_wrong_counts(tmp_path, home) -> None:
    model = write_adapter(
        tmp_path,
        "flaky",
        """
        if any(r.item_id.startswith("count-") for r in requests):
            raise RuntimeError("out of tokens")
        if any(r.item_id.startswith("rule-") for r in requests):
            return [TextOutput(text="1")]  # one answer for a batch of several
        return [TextOutput(text="1") for r in requests]
        """,
        'return [ImageOutput(image=Image.new("RGB", (48, 48), "white")) for r in requests]',
        caps="edits=False",
        batch=4,
    )
    res = api.run("shapes-v1-mini", model, out=tmp_path / "r", samples_gen=1)
    with RunStore.open(res.path) as store:
        outs = store.outputs()
        items = {i.id: i for i in res.suite.items}
    failed = [o for o in outs if o.status is OutputStatus.FAILED]
    unsupported = [o for o in outs if o.status is OutputStatus.UNSUPPORTED]
    assert unsupported and {o.direction for o in unsupported} == {"gen"}
    assert all(items[o.item_id].gen.is_edit for o in unsupported)
    assert not any(
        items[o.item_id].gen.is_edit for o in outs if o.direction == "gen" and o.status is OutputStatus.DONE
    )
    assert any("RuntimeError: out of tokens" in (o.error or "") for o in failed)
    assert any("model returned 1 outputs for" in (o.error or "") for o in failed)
    # the run finished, every other request was served
    assert res.stats.done + res.stats.failed + res.stats.unsupported == 96 * 2
    scored = api.score([res.path], n_boot=0)
    overall = scored.runs[0].overall
    assert overall.gen_unsupported == len(unsupported) and overall.und_failed == len(failed)
    assert any("unsupported" in n and "--unsupported-as-wrong" in n for n in scored.notes)
    strict = api.score([res.path], n_boot=0, unsupported_as_wrong=True).runs[0].overall
    assert strict.gen_n == overall.gen_n + len(unsupported)
    # the same passes over more items
    assert strict.gen_acc == pytest.approx((overall.gen_acc or 0.0) * overall.gen_n / strict.gen_n)


def test_models_scored_on_different_items_are_flagged(tmp_path, home) -> None:
    full = api.run("shapes-v1-mini", "toy", out=tmp_path / "toy")
    blank = api.run("shapes-v1-mini", f"py:{EXAMPLE}:MyModel", out=tmp_path / "blank")
    res = api.score([full.path, blank.path], n_boot=0)
    assert any(n.startswith("models were scored on different items") for n in res.notes)
    assert [r.model for r in res.runs] == ["toy", f"py:{EXAMPLE}:MyModel"]


def test_multi_sample_understanding_is_averaged_per_item(tmp_path, home) -> None:
    model = write_adapter(
        tmp_path,
        "first_right",
        """
        from gapeval.suites import load_suite
        answers = {i.id: i.refs.text for i in load_suite("shapes-v1-mini").items}
        # sample 0 gives the reference answer; samples 1 and 2 say nothing usable
        return [TextOutput(text=answers[r.item_id] if r.sample == 0 else "") for r in requests]
        """,
        'return [ImageOutput(image=Image.new("RGB", (48, 48), "black")) for r in requests]',
    )
    res = api.run("shapes-v1-mini", model, out=tmp_path / "r", samples_und=3, samples_gen=1)
    overall = api.score([res.path], n_boot=0).runs[0].overall
    assert overall.und_n == 96 and overall.und_acc == pytest.approx(1 / 3)
    # a black image is no scene of the world: it passes nothing
    assert overall.gen_acc == 0.0


def test_an_empty_direction_gives_no_gap_only_a_note_and_no_warning(tmp_path, home) -> None:
    model = write_adapter(
        tmp_path,
        "reader",
        'return [TextOutput(text="2") for r in requests]',
        'raise AssertionError("never asked")',
        caps="generates=False, edits=False",
    )
    res = api.run("shapes-v1-mini", model, out=tmp_path / "r")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scored = api.score([res.path], method="both", n_boot=20, fragility_n=0)
    assert not caught, [str(w.message) for w in caught]
    assert scored.mirt is None and all(r.gap is None for r in scored.leaderboard)
    assert any("no identified gap" in n and "generation" in n for n in scored.notes)


def test_a_run_with_nothing_judged_is_not_scored_as_if_it_had_a_result(tmp_path, home, cli) -> None:
    res = api.run("shapes-v1-mini", f"py:{EXAMPLE}:MyModel", out=tmp_path / "r", judges=())
    with pytest.raises(GapevalError, match="nothing to score: it has not been judged"):
        api.score([res.path], n_boot=0)
    code, out, err = invoke(cli, "score", str(res.path))
    assert code == 2 and "nothing to score" in err and "gap" not in out.lower()
    # beside a judged run it is a note, not an error
    judged = api.run("shapes-v1-mini", f"py:{EXAMPLE}:MyModel", out=tmp_path / "j")
    scored = api.score([judged.path, res.path], n_boot=0)
    assert any("not been judged" in n for n in scored.notes)


# -- judges ---------------------------------------------------------------------------------------------


def test_rules_then_vlm_chain_sends_only_what_rules_left(replay_run) -> None:
    with RunStore.open(replay_run) as store:
        done = [o for o in store.outputs() if o.status is OutputStatus.DONE]
    with ScriptedServer(lambda b, n: Reply(content=PASS)) as srv:
        stats = api.judge(replay_run, ["rules", "openai:test-vlm"], options=vlm_opts(srv))
    rules, vlm = stats["rules"], next(v for k, v in stats.items() if k != "rules")
    assert rules.judged + rules.abstained == len(done)
    assert vlm.judged == rules.abstained and 0 < rules.abstained < len(done)
    with RunStore.open(replay_run) as store:
        m = store.manifest()
        assert m.judge_chain[0] == "rules" and m.judge_chain[1].startswith("openai:test-vlm[default]")
        rules_decided = {
            (v.item_id, v.direction) for v in store.verdicts("rules") if v.status is VerdictStatus.OK
        }
        vlm_decided = {(v.item_id, v.direction) for v in store.verdicts(m.judge_chain[1])}
    assert not rules_decided & vlm_decided


def test_judging_inside_a_running_event_loop(replay_run) -> None:
    # A notebook runs its cells inside an event loop: asyncio.run() there used to raise.
    async def cell() -> dict[str, object]:
        with ScriptedServer(lambda b, n: Reply(content=PASS)) as srv:
            return gapeval.judge(replay_run, ["openai:test-vlm"], options=vlm_opts(srv))

    stats = asyncio.run(cell())
    (st,) = stats.values()
    assert st.judged == 23 and st.failed == 0  # type: ignore[attr-defined]


def test_paper_protocol_two_turns_for_text_only_and_ten_calls(replay_run) -> None:
    with ScriptedServer(lambda b, n: Reply(content=PASS)) as srv:
        stats = api.judge(replay_run, ["openai:test-vlm"], options=vlm_opts(srv, protocol="paper"))
    (jid, st), = stats.items()  # fmt: skip
    with RunStore.open(replay_run) as store:
        outs = [o for o in store.outputs() if o.status is OutputStatus.DONE]
        verdicts = store.verdicts(jid)
    n_und = sum(o.direction == "und" for o in outs)
    n_gen = len(outs) - n_und
    # 10 calls per output; text answers get a second turn each; rs-2's consistency check one more
    assert jid.startswith("openai:test-vlm[paper]@") and st.protocol == "paper"
    assert st.usage.requests == 10 * (2 * n_und + n_gen) + 1
    assert all(len(v.meta["samples"]) == 10 for v in verdicts)
    board = api.score([replay_run], method="reference", fragility_n=0).leaderboard
    assert "(paper)" in board[-1].judges


def test_unknown_judge_fails_before_the_model_runs(tmp_path, home) -> None:
    log = tmp_path / "served.log"
    slow = Path(__file__).with_name("slow_model.py")
    with pytest.raises(GapevalError, match="unknown judge 'nosuchjudge'"):
        api.run("shapes-v1-mini", f"py:{slow}:SlowModel", out=tmp_path / "r", model_options={"log": str(log)},
                judges=["scene", "nosuchjudge"])  # fmt: skip
    assert not log.exists() and not (tmp_path / "r").exists()


def test_rubrics_are_a_closed_schema(tmp_path) -> None:
    good = next(r for r in rubric_mod.all_rubrics() if r.id == "physics-und").text
    with pytest.raises(GapevalError) as info:
        rubric_mod.load_rubric("typo.yaml", good.replace("images:", "imagse:"))
    assert info.value.file == "typo.yaml" and info.value.field == "imagse"
    with pytest.raises(GapevalError) as info:
        rubric_mod.load_rubric("missing.yaml", good.replace("system:", "sistem:"))
    assert info.value.field in ("system", "sistem")
    with pytest.raises(GapevalError, match="unknown template variable"):
        rubric_mod.load_rubric("var.yaml", good.replace("{{ prompt }}", "{{ promt }}"))
    with pytest.raises(GapevalError) as info:
        rubric_mod.load_rubric("dir.yaml", good.replace("direction: und", "direction: both"))
    assert info.value.field == "applies_to.direction"


def test_an_unseen_subcategory_gets_a_declared_fallback_never_a_silent_one(sample_tree) -> None:
    from gapeval.items import Category
    from gapeval.suites import load_suite

    base = load_suite(str(sample_tree)).items[0]
    unseen = base.model_copy(
        update={"category": Category.REASONING, "source_category": "reasoning", "subcategory": "origami"}
    )
    rub, fallback = rubric_mod.match_rubric(unseen, "und")
    assert fallback and rub.id == "physics-und" and Category.REASONING in rub.fallback_for
    known = base.model_copy(update={"source_category": "physics", "subcategory": "gravity"})
    assert rubric_mod.match_rubric(known, "und") == (rub, False)


# -- scoring output -------------------------------------------------------------------------------------


def test_score_export_writes_the_response_tensor_and_refuses_the_run_dir(replay_run, cli, tmp_path) -> None:
    api.judge(replay_run, ["rules", "recorded"])
    export = tmp_path / "resp.csv"
    code, _, err = invoke(cli, "score", str(replay_run), "--export", str(export), "--boot", "0")
    assert code == 0, err
    rows = export.read_text().splitlines()
    decided = api.score([replay_run], n_boot=0).runs[0].overall
    assert rows[0] == "model,item,category,direction,y"
    assert len(rows) - 1 == decided.und_n + decided.gen_n
    inside = replay_run / "resp.csv"
    code, _, err = invoke(cli, "score", str(replay_run), "--export", str(inside))
    assert code == 2 and "--export" in err and not inside.exists()


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    assert gapeval.__version__ == version("gapeval")


def test_models_listing_names_extras_and_examples(cli) -> None:
    code, out, _ = invoke(cli, "models", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["models"]["toy"]["extra"] == "torch" and data["judges"]["openai"]["extra"] == "judge"
    assert data["executors"]["local"]["example"] == "local" and "py" in data["models"]


def test_an_adapter_out_of_memory_above_batch_two_still_completes_every_request(tmp_path, home) -> None:
    model = write_adapter(
        tmp_path,
        "oom",
        """
        class OutOfMemoryError(RuntimeError):  # what torch.cuda raises
            pass
        if len(requests) > 2:
            raise OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(requests)} GiB")
        with open(__file__ + ".calls", "a") as fh:
            fh.write(f"{len(requests)}\\n")
        return [TextOutput(text="1") for r in requests]
        """,
        """
        if len(requests) > 2:
            raise RuntimeError("CUDA error: out of memory")
        return [ImageOutput(image=Image.new("RGB", (48, 48), "white")) for r in requests]
        """,
        batch=16,
    )
    res = api.run("shapes-v1-mini", model, out=tmp_path / "r", samples_gen=1, judges=())
    assert res.stats.done == 96 * 2 and res.stats.failed == 0
    sizes = [int(n) for n in (tmp_path / "oom.py.calls").read_text().split()]
    # 16 -> 8 -> 4 -> 2 on the first batch, then every later batch starts at 2
    assert sum(sizes) == 96 and max(sizes) == 2


def test_a_short_last_batch_does_not_shrink_the_batches_after_it(tmp_path, home) -> None:
    # 96 answers in batches of 10 end with a batch of 6; the images that follow still go 10 at a time.
    model = write_adapter(
        tmp_path,
        "sizes",
        """
        with open(__file__ + ".und", "a") as fh:
            fh.write(f"{len(requests)}\\n")
        return [TextOutput(text="1") for r in requests]
        """,
        """
        with open(__file__ + ".gen", "a") as fh:
            fh.write(f"{len(requests)}\\n")
        return [ImageOutput(image=Image.new("RGB", (48, 48), "white")) for r in requests]
        """,
        batch=10,
    )
    api.run("shapes-v1-mini", model, out=tmp_path / "r", samples_gen=1, judges=())
    und = [int(n) for n in (tmp_path / "sizes.py.und").read_text().split()]
    gen = [int(n) for n in (tmp_path / "sizes.py.gen").read_text().split()]
    assert und == [10] * 9 + [6] and gen == [10] * 9 + [6]


def test_a_pair_answers_with_one_model_and_draws_with_the_other(tmp_path, home) -> None:
    pair = f"pair:toy+py:{EXAMPLE}:MyModel"
    res = api.run("shapes-v1-mini", pair, out=tmp_path / "pair", samples_gen=1,
                  model_options={"gen.colour": "black"})  # fmt: skip
    alone = api.run("shapes-v1-mini", "toy", out=tmp_path / "toy", samples_gen=1)
    with RunStore.open(res.path) as a, RunStore.open(alone.path) as b:
        texts = {o.item_id: o.text for o in a.outputs() if o.direction == "und"}
        assert texts == {o.item_id: o.text for o in b.outputs() if o.direction == "und"}
        m = a.manifest()
        gen = [o for o in a.outputs() if o.direction == "gen"]
    # the example adapter cannot edit: the pair's edits are unsupported, its drawings black canvases
    assert {o.status for o in gen} == {OutputStatus.DONE, OutputStatus.UNSUPPORTED}
    assert m.spec.model_identity["und"]["adapter"] == "gapeval.models.toy:ToyModel"
    assert m.spec.model_identity["gen"]["adapter"] == "py:my_adapter:MyModel"
    assert (
        m.model_description["gen"]["family"] == "my-model" and m.model_description["und"]["family"] == "toy"
    )
    with pytest.raises(GapevalError, match=r"und\.KEY or gen\.KEY"):
        api.run("shapes-v1-mini", pair, out=tmp_path / "x", model_options={"colour": "black"})


def test_an_io_bound_adapter_streams_each_reply_past_a_slow_one() -> None:
    import threading

    from gapeval.executors.base import ModelSpec
    from gapeval.executors.local import LocalExecutor
    from gapeval.models.base import Capabilities, TextOutput
    from gapeval.records import WorkUnit

    release = threading.Event()

    class Api:
        name = "api"
        capabilities = Capabilities()
        batch_size = 1
        parallel_calls = 4

        def describe(self) -> dict[str, str]:
            return {}

        def understand(self, requests):  # type: ignore[no-untyped-def]
            if requests[0].item_id == "slow":
                release.wait(timeout=20)  # held until every other reply has been yielded
            return [TextOutput(text=r.item_id) for r in requests]

    units = [
        WorkUnit(item_id=i, direction="und", sample=0, seed=0, prompt="?") for i in ["slow", *"abcdefgh"]
    ]
    order = []
    for result in LocalExecutor(Api()).execute(ModelSpec(spec="x"), units, {}):  # type: ignore[arg-type]
        order.append(result.unit.item_id)
        if len(order) == 8:
            release.set()
    assert set(order[:8]) == set("abcdefgh") and order[8] == "slow"
