"""The Ray executor on a local Ray instance (ray.init(num_cpus=2), no cluster)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gapeval import api
from gapeval.errors import GapevalError
from gapeval.records import OutputStatus
from gapeval.store import RunStore

if os.environ.get("GAPEVAL_REQUIRE_RAY") != "1":
    pytest.importorskip("ray")
import ray  # CI sets GAPEVAL_REQUIRE_RAY: there a missing ray fails instead of skipping)

SLOW = Path(__file__).with_name("slow_model.py").resolve()


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def outputs(run: Path) -> dict[tuple[str, str, int], tuple[str, str | None, str | None]]:
    with RunStore.open(run) as store:
        return {(o.item_id, str(o.direction), o.sample): (str(o.status), o.text, o.image_sha)
                for o in store.outputs()}  # fmt: skip


def served(log: Path) -> list[tuple[str, str, int]]:
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()]  # type: ignore[misc]


def test_a_ray_run_gives_the_local_runs_records(tmp_path) -> None:
    local = api.run("shapes-v1-mini", "toy", out=tmp_path / "local", batch_size=32)
    remote = api.run("shapes-v1-mini", "toy", out=tmp_path / "ray", batch_size=32, executor="ray",
                     executor_options={"replicas": "2"})  # fmt: skip
    assert remote.stats.done == local.stats.done == 96 + 96 * 2
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")
    with RunStore.open(tmp_path / "ray") as store:
        manifest = store.manifest()
        assert manifest.executor == "ray" and manifest.model_description["family"] == "toy"
    scored = api.score([tmp_path / "local", tmp_path / "ray"], fragility_n=0, n_boot=0)
    assert scored.runs[0].overall.und_acc == scored.runs[1].overall.und_acc
    assert scored.runs[0].overall.gen_acc == scored.runs[1].overall.gen_acc


def test_a_replica_that_dies_loses_only_its_batch(tmp_path) -> None:
    log, marker = tmp_path / "served.jsonl", tmp_path / "died"
    opts = {"log": str(log), "die_on": "relation-0010", "marker": str(marker)}
    # One batch in flight per replica: a replica that dies mid-call may also take with it the reply of
    # a batch it had finished but not yet sent, and with 2 in flight that batch is redone too.
    res = api.run("shapes-v1-mini", f"py:{SLOW}:DyingModel", out=tmp_path / "run", batch_size=8, judges=[],
                  executor="ray", executor_options={"replicas": "2", "in_flight": "1"},
                  model_options=opts)  # fmt: skip
    assert marker.exists()  # a replica really died mid-run
    assert res.stats.done == 96 * 3 and res.stats.failed == 0
    counts: dict[tuple[str, str, int], int] = {}
    for key in served(log):
        counts[key] = counts.get(key, 0) + 1
    twice = {k for k, n in counts.items() if n == 2}
    assert len(counts) == 96 * 3 and set(counts.values()) <= {1, 2}
    # Exactly the killed batch was served again: its 8 requests, the dying item among them.
    assert len(twice) == 8 and ("relation-0010", "und", 0) in twice
    local = api.run("shapes-v1-mini", f"py:{SLOW}:SlowModel", out=tmp_path / "local", batch_size=8,
                    judges=[], model_options={"log": str(tmp_path / "local.jsonl")})  # fmt: skip
    assert local.stats.done == res.stats.done
    assert outputs(tmp_path / "run") == outputs(tmp_path / "local")


def test_a_killed_driver_resumes_without_redoing_finished_work(tmp_path) -> None:
    log, run = tmp_path / "served.jsonl", tmp_path / "run"
    address = ray.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "gapeval.cli", "run", "shapes-v1-mini", "-m", f"py:{SLOW}:SlowModel",
           "--model-opt", f"log={log}", "--model-opt", "delay=0.3", "--batch-size", "4", "-o", str(run),
           "--executor", "ray", "--ray-address", address, "--replicas", "2", "--no-html",
           "-j", "scene"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (run / "manifest.json").exists() and log.exists() and len(served(log)) >= 40:
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    with RunStore.open(run) as store:
        done_before = {(o.item_id, str(o.direction), o.sample) for o in store.outputs(OutputStatus.DONE)}
    assert 0 < len(done_before) < 96 * 3
    n_before = len(served(log))
    again = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["resumed"] and summary["outputs"]["skipped_done"] == len(done_before)
    redone = set(served(log)[n_before:])
    assert not redone & done_before  # nothing finished before the kill was served again
    assert len(outputs(run)) == 96 * 3 and all(s == "done" for s, _, _ in outputs(run).values())


def test_bad_ray_options_are_one_clear_error(tmp_path) -> None:
    with pytest.raises(GapevalError, match="unknown option 'replicaz'"):
        api.run(
            "shapes-v1-mini", "toy", out=tmp_path / "a", executor="ray", executor_options={"replicaz": "2"}
        )
    with pytest.raises(GapevalError, match="must be >= 1"):
        api.run(
            "shapes-v1-mini", "toy", out=tmp_path / "b", executor="ray", executor_options={"replicas": "0"}
        )
    with pytest.raises(GapevalError, match="use --executor ray"):
        api.run("shapes-v1-mini", "toy", out=tmp_path / "c", executor_options={"replicas": "2"})
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_a_sweep_of_two_models_and_two_seeds_is_one_command_with_one_leaderboard(tmp_path, cli) -> None:
    from tests.conftest import invoke

    address = ray.get_runtime_context().gcs_address
    spec = {
        "name": "mini",
        "suites": ["shapes-v1-mini"],
        "models": [{"model": "toy", "label": "toy"},
                   {"model": f"py:{SLOW}:SlowModel", "label": "slow",
                    "options": {"log": str(tmp_path / "s.jsonl")}}],
        "seeds": [0, 1],
        "executor": "ray",
        "executor_options": {"address": address, "replicas": "2"},
    }  # fmt: skip
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    code, stdout, stderr = invoke(cli, "sweep", str(path), "-o", str(tmp_path / "out"))
    assert code == 0, stderr
    for label in ("toy seed 0", "toy seed 1", "slow seed 0", "slow seed 1"):
        assert label in stdout
    assert stdout.count("mini: shapes-v1-mini, judged by scene") == 1  # one combined leaderboard
    runs = sorted(p.parent.name + "/" + p.name for p in (tmp_path / "out").glob("*/*/seed-*"))
    assert runs == ["slow/seed-0", "slow/seed-1", "toy/seed-0", "toy/seed-1"]
    assert (tmp_path / "out" / "shapes-v1-mini" / "report" / "index.html").is_file()
    # Again: every run resumes with nothing left to do.
    code, _, stderr = invoke(cli, "sweep", str(path), "-o", str(tmp_path / "out"), "--no-html")
    assert code == 0 and stderr.count("resumed, 0 outputs made") == 4


def test_each_input_image_crosses_the_wire_once(tmp_path, monkeypatch) -> None:
    from gapeval.suites import load_suite

    puts: list[int] = []
    real_put = ray.put

    def counting_put(value, *args, **kwargs):
        puts.append(len(value))
        return real_put(value, *args, **kwargs)

    monkeypatch.setattr(ray, "put", counting_put)
    api.run("shapes-v1-mini", "toy", out=tmp_path / "run", batch_size=8, judges=[], executor="ray",
            executor_options={"replicas": "2"})  # fmt: skip
    suite = load_suite("shapes-v1-mini")
    distinct = {r.sha256 for i in suite.items for r in i.und.images}
    distinct |= {i.gen.input_image.sha256 for i in suite.items if i.gen.input_image}
    assert len(puts) == len(distinct)  # each distinct image once, whatever the number of batches using it


def test_the_local_path_never_imports_ray(tmp_path) -> None:
    code = ("import sys, gapeval.api, gapeval.cli, gapeval.executors.local, gapeval.sweep; "
            "print('ray' in sys.modules)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
