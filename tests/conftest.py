from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from gapeval.cli import app
from gapeval.suites.sample import write_sample_tree

# Nothing in the tests may reach the Hugging Face hub: tiny models are built in-process.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

#: Test data kept in the repository (tests never read outside it).
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def sample_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_tree(tmp_path_factory.mktemp("sample") / "gapeval")


@pytest.fixture
def sample_tree(sample_master: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "gapeval"
    shutil.copytree(sample_master, dst)
    return dst


def add_item(
    root: Path, name: str, prompt: object, files: dict[str, bytes | Image.Image] | None = None
) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompt.json").write_text(prompt if isinstance(prompt, str) else json.dumps(prompt))
    for rel, data in (files or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Image.Image):
            data.save(folder / rel)
        else:
            (folder / rel).write_bytes(data)
    return folder


#: The API key planted for loopback judges (and searched for: it must never reach disk).
TEST_KEY = "sk-planted-test-key-never-written"


@pytest.fixture
def replay_run(sample_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run of the sample tree's replayed model, not judged yet; the test key is in the environment."""
    from gapeval import api

    monkeypatch.setenv("GAPEVAL_TEST_KEY", TEST_KEY)
    out = tmp_path / "run"
    api.run(str(sample_tree), "replay:demo-umm", out=out, judges=())
    return out


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def run_replay(runner: CliRunner, tree: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    """``gapeval run TREE -m replay:demo-umm -o OUT`` judged by rules (plus any extra flags), no fragility."""
    args = ["run", str(tree), "-m", "replay:demo-umm", "-o", str(out), "-j", "rules", "--fragility", "0"]
    return invoke(runner, *args, *extra)


def gapeval_subprocess(*args: str, cwd: Path, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gapeval", *args],
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )  # type: ignore[call-overload]
