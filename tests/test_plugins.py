"""A third-party package adds a model, a judge, a suite, an executor and a report through entry points.

The package is built and installed (pip, into a folder) inside the test; gapeval runs in a subprocess
that sees it the way an installed plugin is seen: through its distribution's entry points.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "gapeval-testplugin"
version = "0.1"

[project.entry-points."gapeval.models"]
echo = "gapeval_testplugin.model:EchoModel"
toy = "gapeval_testplugin.model:EchoModel"

[project.entry-points."gapeval.judges"]
lenient = "gapeval_testplugin.judge:LenientJudge"

[project.entry-points."gapeval.suites"]
tiny = "gapeval_testplugin.suite:TinySuite"

[project.entry-points."gapeval.executors"]
oneby = "gapeval_testplugin.executor:OneByOne"

[project.entry-points."gapeval.reports"]
text = "gapeval_testplugin.report:TextReport"

[tool.setuptools]
packages = ["gapeval_testplugin"]
"""

MODULES = {
    "__init__.py": "",
    "model.py": """
        from PIL import Image
        from gapeval.models.base import Capabilities, ImageOutput, TextOutput

        class EchoModel:
            name = "echo"
            capabilities = Capabilities()

            @classmethod
            def from_spec(cls, arg, options, context):
                return cls()

            @classmethod
            def identify(cls, arg, options, context):
                return {"echo": arg or "plain"}

            def describe(self):
                return {"family": "echo"}

            def understand(self, requests):
                return [TextOutput(text=r.prompt.split()[-1]) for r in requests]

            def generate(self, requests):
                return [ImageOutput(image=Image.new("RGB", (8, 8), "white")) for r in requests]
        """,
    "judge.py": """
        from gapeval.judges.base import Decision, ExactJudge, text_hash

        class LenientJudge(ExactJudge):
            judge_id = "lenient"
            spec = "lenient"
            rubric_id = "lenient-v1"
            rubric_hash = text_hash("lenient-v1")

            @classmethod
            def from_spec(cls, arg, context):
                return cls()

            def judge_batch(self, tasks):
                return [
                    Decision.decide((t.output.text or "") == (t.item.refs.text or "") if t.direction == "und"
                                    else True, "lenient")
                    for t in tasks
                ]
        """,
    "suite.py": """
        from gapeval.items import Category, GenerationTask, Item, References, UnderstandingTask
        from gapeval.suites.base import Suite

        class TinySuite:
            @classmethod
            def load(cls, spec, *, skip_invalid=False):
                items = tuple(
                    Item(id=f"t{i}", category=cat, und=UnderstandingTask(prompt=f"say {word}"),
                         gen=GenerationTask(prompt=f"draw {word}"), refs=References(text=word))
                    for i, (cat, word) in enumerate(zip(Category, ["red", "two", "zorp", "yes"]))
                )
                return Suite(name="tiny", items=items, judges=("lenient",))
        """,
    "executor.py": """
        import time
        from gapeval.executors.base import WorkResult
        from gapeval.images import png_bytes
        from gapeval.models.base import GenerateRequest, UnderstandRequest, load_model
        from gapeval.records import OutputStatus

        class OneByOne:
            '''Builds the model where it runs and serves one request per call.'''
            name = "oneby"

            def __init__(self):
                self._model = None

            @classmethod
            def from_spec(cls, arg, options):
                return cls()

            def model_description(self):
                return {"served_by": "oneby", **(self._model.describe() if self._model else {})}

            def execute(self, model, units, images):
                if not units:
                    return
                self._model = load_model(model.spec, suite=model.context, options=model.options)
                for u in units:
                    t0 = time.perf_counter()
                    if u.direction == "und":
                        (out,) = self._model.understand([UnderstandRequest(item_id=u.item_id, prompt=u.prompt,
                                                                           seed=u.seed, sample=u.sample)])
                        yield WorkResult(u, OutputStatus.DONE, text=out.text, wall_s=time.perf_counter() - t0)
                    else:
                        (out,) = self._model.generate([GenerateRequest(item_id=u.item_id, prompt=u.prompt,
                                                                       seed=u.seed, sample=u.sample)])
                        yield WorkResult(u, OutputStatus.DONE, image_png=png_bytes(out.image),
                                         wall_s=time.perf_counter() - t0)
        """,
    "report.py": """
        class TextReport:
            @staticmethod
            def write(run_dir, manifest, result):
                overall = result.runs[0].overall
                path = run_dir / "report.txt"
                path.write_text(f"{manifest.display_name}: und {overall.und_acc} gen {overall.gen_acc}\\n")
                return path
        """,
}


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("plugin-src")
    (src / "pyproject.toml").write_text(PYPROJECT)
    pkg = src / "gapeval_testplugin"
    pkg.mkdir()
    for name, body in MODULES.items():
        (pkg / name).write_text(textwrap.dedent(body))
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(src)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return target


def gapeval(plugin_path: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(plugin_path), "GAPEVAL_HOME": str(cwd / "home")}
    return subprocess.run(
        [sys.executable, "-m", "gapeval", *args],
        cwd=cwd,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


def test_every_kind_plugs_in_through_an_entry_point(plugin_path, tmp_path) -> None:
    listed = gapeval(plugin_path, tmp_path, "models", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert "echo" in data["models"] and "lenient" in data["judges"] and "oneby" in data["executors"]
    suites = json.loads(gapeval(plugin_path, tmp_path, "suites", "--json").stdout)
    assert "tiny" in suites

    out = tmp_path / "run"
    res = gapeval(plugin_path, tmp_path, "run", "tiny", "-m", "echo", "--executor", "oneby", "-o", str(out),
                  "--fragility", "0", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["judges_from"] == "suite" and list(summary["judges"]) == ["lenient"]
    overall = summary["runs"][0]["overall"]
    assert overall["und_acc"] == 1.0 and overall["gen_acc"] == 1.0 and overall["n_paired"] == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["executor"] == "oneby" and manifest["model_description"]["served_by"] == "oneby"
    assert manifest["spec"]["model_identity"]["echo"] == "plain"

    rep = gapeval(
        plugin_path, tmp_path, "report", str(out), "--kind", "text", "--fragility", "0", "--boot", "0"
    )
    assert rep.returncode == 0, rep.stderr
    assert (out / "report.txt").read_text() == "echo: und 1.0 gen 1.0\n"


def test_a_plugin_cannot_shadow_a_builtin_name(plugin_path, tmp_path) -> None:
    # the plugin also registers "toy": the built-in one still answers to the name
    data = json.loads(gapeval(plugin_path, tmp_path, "models", "--json").stdout)
    assert (
        data["models"]["toy"]["extra"] == "torch"
        and "built-in unified model" in data["models"]["toy"]["description"]
    )
    res = gapeval(plugin_path, tmp_path, "run", "tiny", "-m", "nosuch", "-o", str(tmp_path / "r"))
    assert res.returncode == 2 and "unknown model 'nosuch'" in res.stderr and "echo" in res.stderr
    assert "Traceback" not in res.stderr
