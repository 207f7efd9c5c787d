"""The run store: durable per item, resumable after SIGKILL, verdicts cached, specs never mixed."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from tests.conftest import gapeval_subprocess, invoke, run_replay

from gapeval import api
from gapeval.errors import GapevalError
from gapeval.records import OutputStatus
from gapeval.store import RunStore

MODEL_FILE = Path(__file__).with_name("slow_model.py")


def run_args(tree: Path, out: Path, log: Path, delay: str) -> list[str]:
    return [
        "run",
        str(tree),
        "-m",
        f"py:{MODEL_FILE}:SlowModel",
        "-o",
        str(out),
        "--model-opt",
        f"log={log}",
        "--model-opt",
        f"delay={delay}",
        "--samples-gen",
        "2",
        "--batch-size",
        "2",
        "-j",
        "rules",
        "--fragility",
        "0",
    ]


def comparable(store: RunStore) -> list[tuple[object, ...]]:
    return [
        (o.item_id, o.direction, o.sample, o.status, o.seed, o.text, o.image_sha) for o in store.outputs()
    ]


def served(log: Path) -> list[tuple[str, str, int]]:
    if not log.exists():
        return []
    return [tuple(json.loads(line)) for line in log.read_text().splitlines() if line.strip()]  # type: ignore[misc]


@pytest.mark.parametrize("kill_after", [3, 17])
def test_sigkill_then_same_command_resumes_without_redoing(sample_tree, tmp_path, kill_after) -> None:
    clean_out, clean_log = tmp_path / "clean", tmp_path / "clean.log"
    proc = gapeval_subprocess(*run_args(sample_tree, clean_out, clean_log, "0"), cwd=tmp_path)
    assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""

    out, log = tmp_path / "killed", tmp_path / "killed.log"
    args = run_args(sample_tree, out, log, "0.15")
    proc = gapeval_subprocess(*args, cwd=tmp_path)
    deadline = time.time() + 60
    while len(served(log)) < kill_after and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with RunStore.open(out) as store:
        done_at_kill = {(o.item_id, str(o.direction), o.sample) for o in store.outputs(OutputStatus.DONE)}
    served_before = len(served(log))
    assert 0 < len(done_at_kill) < 36

    proc = gapeval_subprocess(*args, cwd=tmp_path)
    assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    redone = served(log)[served_before:]
    assert redone, "the resume served nothing"
    assert not done_at_kill & {(i, d, s) for i, d, s in redone}, "finished work was redone"
    assert len(done_at_kill) + len(redone) <= 36 + 2  # at most the in-flight batch is asked twice

    with RunStore.open(out) as a, RunStore.open(clean_out) as b:
        assert comparable(a) == comparable(b)
        assert not a.outputs(OutputStatus.PENDING)
        assert [e[1] for e in a.events()][:2] == ["start", "execute"]
        assert "resume" in [e[1] for e in a.events()]
        assert a.manifest().finished_at is not None
        # verdicts after resume equal the clean run's
        va = [(v.item_id, v.direction, v.sample, v.status, v.passed) for v in a.verdicts()]
        vb = [(v.item_id, v.direction, v.sample, v.status, v.passed) for v in b.verdicts()]
        assert va == vb


def test_second_identical_run_does_no_work(sample_tree, tmp_path) -> None:
    log = tmp_path / "log"
    opts = {"log": str(log)}
    model = f"py:{MODEL_FILE}:SlowModel"
    first = api.run(str(sample_tree), model, out=tmp_path / "r", model_options=opts, judges=["rules"])
    assert first.stats.done == 24 and not first.resumed
    n = len(served(log))
    again = api.run(str(sample_tree), model, out=tmp_path / "r", model_options=opts, judges=["rules"])
    assert again.resumed and again.stats.done == 0 and again.stats.skipped_done == 24
    assert len(served(log)) == n
    assert again.judge_stats["rules"].judged == 0
    assert again.judge_stats["rules"].cached == 24


def test_rejudge_reuses_outputs_and_caches_verdicts(cli, sample_tree, tmp_path) -> None:
    out = tmp_path / "r"
    assert run_replay(cli, sample_tree, out)[0] == 0
    code, stdout, _ = invoke(cli, "judge", str(out), "--judge", "rules", "--judge", "recorded", "--json")
    assert code == 0
    first = json.loads(stdout)
    assert first["rules"]["judged"] == 0 and first["rules"]["cached"] == 23  # decided during the run
    assert first["recorded:demo-umm"]["judged"] == 7
    code, stdout, _ = invoke(cli, "judge", str(out), "--judge", "rules", "--judge", "recorded", "--json")
    second = json.loads(stdout)
    assert second["rules"]["judged"] == 0 and second["recorded:demo-umm"]["judged"] == 0
    assert second["recorded:demo-umm"]["cached"] == 8
    with RunStore.open(out) as store:
        assert [j.judge_id for j in store.manifest().judges] == ["rules", "recorded:demo-umm"]


def test_resume_with_another_spec_is_refused(sample_tree, tmp_path) -> None:
    api.run(str(sample_tree), "replay:demo-umm", out=tmp_path / "r", judges=["rules"])
    with pytest.raises(GapevalError) as info:
        api.run(str(sample_tree), "replay:demo-umm", out=tmp_path / "r", seed=1, judges=["rules"])
    assert info.value.field == "spec.seed" and "manifest.json" in (info.value.file or "")


def test_runs_without_out_never_share_a_directory(sample_tree, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    a = api.run(str(sample_tree), "replay:demo-umm", judges=())
    b = api.run(str(sample_tree), "replay:demo-umm", judges=())
    assert a.path != b.path and not b.resumed


def test_manifest_records_provenance_and_images_are_content_addressed(sample_tree, tmp_path) -> None:
    res = api.run(str(sample_tree), "replay:demo-umm", out=tmp_path / "r", judges=["rules"])
    with RunStore.open(res.path) as store:
        m = store.manifest()
        assert m.spec.suite_hash == res.suite.content_hash() and m.spec.n_items == 12
        assert m.versions["python"] and "numpy" in m.versions
        assert m.model_description["family"] == "replay"
        shas = [o.image_sha for o in store.outputs(OutputStatus.DONE) if o.image_sha]
        assert shas and all(store.image_path(s).is_file() for s in shas)
        # identical images are stored once
        assert len(list(store.images_dir.rglob("*.png"))) == len(set(shas))
        failed = store.outputs(OutputStatus.FAILED)
        assert [(o.item_id, o.direction) for o in failed] == [("rule-3", "gen")]
        assert "no saved image" in (failed[0].error or "")
    # a secret-looking adapter option is redacted before anything is written
    log = tmp_path / "log"
    model = f"py:{MODEL_FILE}:SlowModel"
    opts = {"log": str(log), "api_key": "sk-secret"}
    res = api.run(str(sample_tree), model, out=tmp_path / "s", model_options=opts, judges=["rules"])
    with RunStore.open(res.path) as store:
        assert store.manifest().spec.model_options == {"log": str(log), "api_key": "<redacted>"}
    assert not any("sk-secret" in p.read_text(errors="ignore") for p in res.path.rglob("*") if p.is_file())
