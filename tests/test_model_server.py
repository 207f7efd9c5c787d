"""The model-server protocol across a real process boundary: gapeval serve, and the standalone template."""

from __future__ import annotations

import json
import os
import shutil
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

SLOW = Path(__file__).with_name("slow_model.py")
TEMPLATE = Path(__file__).resolve().parents[1] / "src" / "gapeval" / "serve" / "template_server.py"


def start(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start a server process; returns it and the URL it printed."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        raise AssertionError(f"server did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, line.strip().rsplit(" ", 1)[1]


def serve(log: Path, delay: str = "0", port: int = 0) -> tuple[subprocess.Popen[str], str]:
    return start([sys.executable, "-m", "gapeval", "serve", f"py:{SLOW}:SlowModel", "--port", str(port),
                  "--model-opt", f"log={log}", "--model-opt", f"delay={delay}"])  # fmt: skip


def served(log: Path) -> list[tuple[str, str, int]]:
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()] if log.exists() else []  # type: ignore[misc]


def records(out: Path) -> list[tuple[object, ...]]:
    with RunStore.open(out) as store:
        return [(o.item_id, o.direction, o.sample, o.status, o.text, o.image_sha) for o in store.outputs()]


def test_gapeval_serve_gives_the_same_records_as_the_adapter_in_process(sample_tree, tmp_path) -> None:
    proc, url = serve(tmp_path / "served.log")
    try:
        remote = api.run(str(sample_tree), url, out=tmp_path / "remote", judges=["rules"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    local = api.run(str(sample_tree), f"py:{SLOW}:SlowModel", out=tmp_path / "local", judges=["rules"],
                    model_options={"log": str(tmp_path / "local.log"), "delay": "0"})  # fmt: skip
    assert remote.stats.done == local.stats.done == 24
    # same answers, and the same images byte for byte (seeds went over the wire and back)
    assert records(tmp_path / "remote") == records(tmp_path / "local")
    with RunStore.open(tmp_path / "remote") as store:
        m = store.manifest()
    assert m.spec.model_identity["identity"] == {"adapter": "py:slow_model:SlowModel"}
    assert (
        m.model_description["family"] == "remote" and m.model_description["remote"]["family"] == "test-slow"
    )


def test_a_server_killed_mid_run_leaves_failures_and_the_same_command_finishes(sample_tree, tmp_path) -> None:
    log = tmp_path / "served.log"
    proc, url = serve(log, delay="0.2")
    port = int(url.rsplit(":", 1)[1])
    out = tmp_path / "run"
    killer_deadline = time.monotonic() + 60

    def kill_when_started() -> None:
        while len(served(log)) < 6 and time.monotonic() < killer_deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)

    import threading

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    first = api.run(str(sample_tree), url, out=out, judges=["rules"], batch_size=2,
                    model_options={"timeout_s": "5"})  # fmt: skip
    killer.join()
    proc.wait(timeout=30)
    assert first.stats.failed > 0 and first.stats.done > 0
    with RunStore.open(out) as store:
        failed = store.outputs(OutputStatus.FAILED)
        done_before = {(o.item_id, str(o.direction), o.sample) for o in store.outputs(OutputStatus.DONE)}
    assert failed and all("model server" in (o.error or "") for o in failed), [o.error for o in failed]
    # the same command, once the server is back on the same address, redoes nothing that was done
    log2 = tmp_path / "served-again.log"
    proc2, url2 = serve(log2, port=port)
    try:
        assert url2 == url
        again = api.run(str(sample_tree), url, out=out, judges=["rules"], batch_size=2,
                        model_options={"timeout_s": "5"})  # fmt: skip
    finally:
        proc2.terminate()
        proc2.wait(timeout=30)
    assert again.resumed and again.stats.failed == 0
    assert not done_before & set(served(log2))
    with RunStore.open(out) as store:
        assert len(store.outputs(OutputStatus.DONE)) == 24


def test_the_standalone_template_runs_without_gapeval(tmp_path, monkeypatch) -> None:
    # A Python that cannot import gapeval: a package of that name that refuses to load comes first.
    blocker = tmp_path / "blocker" / "gapeval"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        "raise ImportError('gapeval is not installed in this environment')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    check = subprocess.run([sys.executable, "-c", "import gapeval"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "not installed in this environment" in check.stderr
    template = shutil.copy(TEMPLATE, tmp_path / "my_server.py")
    proc, url = start([sys.executable, str(template), "--port", "0"], env=env)
    monkeypatch.setenv("GAPEVAL_HOME", str(tmp_path / "home"))
    try:
        res = api.run("shapes-v1-mini", url, out=tmp_path / "run", samples_gen=1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert res.stats.done == 96 * 2 and res.stats.failed == 0
    with RunStore.open(res.path) as store:
        m = store.manifest()
        texts = {o.text for o in store.outputs() if o.direction == "und"}
    assert m.spec.model_identity["identity"] == {"weights": "none"} and texts == {"I do not know."}
    # what the template answers is judged like any model's: a white canvas and a shrug pass nothing
    overall = api.score([res.path], n_boot=0).runs[0].overall
    assert overall.und_acc == 0.0 and overall.gen_acc == 0.0


def test_no_server_is_one_line_before_anything_runs(sample_tree, tmp_path, cli) -> None:
    from tests.conftest import invoke

    code, _, err = invoke(cli, "run", str(sample_tree), "-m", "http://127.0.0.1:9", "-o", str(tmp_path / "r"),
                          "-j", "rules")  # fmt: skip
    assert code == 2 and "cannot reach the model server at http://127.0.0.1:9" in err
    assert not (tmp_path / "r").exists()
    with pytest.raises(GapevalError, match="unknown option 'temperature'"):
        api.run(str(sample_tree), "http://127.0.0.1:9", model_options={"temperature": "1"}, judges=["rules"])
