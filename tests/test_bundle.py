"""A run exported as one file can be scored, re-judged and reported on elsewhere, without model or data."""

from __future__ import annotations

import json
import shutil
import zipfile

from tests.conftest import TEST_KEY, invoke, run_replay

from gapeval.store import RunStore
from gapeval.testing.openai_server import Reply, ScriptedServer


def test_a_bundle_is_scored_judged_and_reported_without_the_run_or_the_dataset(
    cli, sample_tree, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("GAPEVAL_TEST_KEY", TEST_KEY)
    run = tmp_path / "run"
    code, _, err = run_replay(cli, sample_tree, run, "--no-html")
    assert code == 0, err
    _, before, _ = invoke(cli, "score", str(run), "--method", "reference", "--fragility", "0", "--json")
    bundle = tmp_path / "share" / "run.gapeval"
    code, out, err = invoke(cli, "export", str(run), "-o", str(bundle))
    assert code == 0 and "bundle:" in out, err
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        assert {"bundle.json", "suite.json", "run/manifest.json", "run/run.sqlite"} <= names
        assert any(n.startswith("suite_images/") for n in names)
        assert not any(TEST_KEY.encode() in z.read(n) for n in names)
    shutil.rmtree(run)
    shutil.rmtree(sample_tree)  # the dataset is gone too: the bundle carries its items and images

    _, after, _ = invoke(cli, "score", str(bundle), "--method", "reference", "--fragility", "0", "--json")

    def rows(out: str) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k != "run"} for r in json.loads(out)["leaderboard"]]

    assert rows(after) == rows(before)  # the same numbers, from the bundle alone

    # Re-judging by a VLM works from the bundle's own snapshot (the questions' images travel in it),
    # and the new verdicts are written back into the file.
    with ScriptedServer(lambda body, n: Reply(content='{"reason": "fine", "verdict": "pass"}')) as srv:
        opts = [f"base_url={srv.base_url}", "api_key_env=GAPEVAL_TEST_KEY", "backoff_s=0.01"]
        code, out, err = invoke(cli, "judge", str(bundle), "-j", "openai:test-vlm",
                                *[x for o in opts for x in ("--judge-opt", o)])  # fmt: skip
        assert code == 0, err
        images_seen = [
            p for b in srv.requests for p in b["messages"][1]["content"] if p["type"] == "image_url"
        ]
    assert images_seen
    extracted = bundle.with_name("run.gapeval.d")
    shutil.rmtree(extracted)  # what was judged must be in the file itself now
    code, out, err = invoke(cli, "score", str(bundle), "-j", "openai:test-vlm", "--method", "reference",
                            "--fragility", "0", "--json")  # fmt: skip
    assert code == 0, err
    with RunStore.open(extracted / "run") as store:
        judges = {v.judge_id.partition("[")[0] for v in store.verdicts()}
    assert judges == {"rules", "openai:test-vlm"}

    code, out, err = invoke(cli, "report", str(bundle), "--fragility", "0", "--boot", "0")
    assert code == 0 and (extracted / "run" / "report" / "index.html").is_file(), err


def test_a_bundle_member_outside_its_folder_is_refused(cli, tmp_path) -> None:
    evil = tmp_path / "evil.gapeval"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("bundle.json", json.dumps({"format": "gapeval-bundle", "version": 1}))
        z.writestr("../escaped.txt", "x")
    code, _, err = invoke(cli, "score", str(evil))
    assert code == 2 and "would land outside" in err and err.count("\n") == 1
    assert not (tmp_path.parent / "escaped.txt").exists()
