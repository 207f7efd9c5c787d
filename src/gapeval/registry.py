"""One lazy registry for every pluggable kind: models, judges, suites, executors and reports.

Each kind maps a name to ``"module:attribute"`` and imports the module only when that name is used, so
an optional heavy dependency stays optional; a missing one becomes one line naming the ``pip install``
to run. Third-party packages add names through the entry-point group of the kind
(``gapeval.models``, ``gapeval.judges``, ``gapeval.suites``, ``gapeval.executors``, ``gapeval.reports``):

.. code-block:: toml

    [project.entry-points."gapeval.models"]
    mymodel = "my_package.adapter:MyModel"

A built-in name always wins over a plugin of the same name (a plugin cannot shadow ``toy``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from gapeval.errors import GapevalError


@dataclass(frozen=True)
class Entry:
    """One registered name.

    Attributes:
        target: ``"module:attribute"``, imported on first use.
        description: One line for listings.
        extra: The optional-dependency extra it needs (``judge`` -> ``pip install 'gapeval[judge]'``).
        example: An example spec.
        does: For models, what it can do (``und``: answer, ``gen``: draw from text, ``edit``).
        plugin: Whether it came from an entry point.

    """

    target: str
    description: str
    extra: str | None = None
    example: str = ""
    does: str = ""
    plugin: bool = False


@dataclass
class Registry:
    """Names of one kind, built in or from an entry-point group."""

    kind: str
    group: str
    builtins: dict[str, Entry] = field(default_factory=dict)

    def entries(self) -> dict[str, Entry]:
        """Every known name, built-ins first, then plugins (sorted)."""
        found = dict(self.builtins)
        for ep in sorted(entry_points(group=self.group), key=lambda e: e.name):
            found.setdefault(ep.name, Entry(ep.value, f"plugin ({ep.value})", plugin=True))
        return found

    def describe(self) -> dict[str, str]:
        """Name -> one-line description."""
        return {name: e.description for name, e in self.entries().items()}

    def load(self, name: str) -> Any:
        """Import and return what ``name`` names.

        Raises:
            GapevalError: Unknown name, or its optional dependency is missing (naming the install).

        """
        entry = self.entries().get(name)
        if entry is None:
            raise GapevalError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.entries())}", field=self.kind
            )
        module_name, _, attr = entry.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            install = f"pip install 'gapeval[{entry.extra}]'" if entry.extra else "install its package"
            raise GapevalError(
                f"{self.kind} {name!r} needs an optional dependency ({exc.name or exc}): {install}",
                field=self.kind,
            ) from exc
        try:
            return getattr(module, attr)
        except AttributeError as exc:
            raise GapevalError(f"{entry.target} does not exist", field=self.kind) from exc


MODELS = Registry(
    "model",
    "gapeval.models",
    {
        "toy": Entry(
            "gapeval.models.toy:ToyModel",
            "the built-in unified model trained on the shapes world (shipped weights, or toy:CHECKPOINT.pt)",
            extra="torch",
            example="toy",
            does="und gen edit",
        ),
        "replay": Entry(
            "gapeval.models.replay:ReplayModel",
            "outputs already on disk in the authors' layout: replay:MODEL_DIR_NAME",
            example="replay:janus-pro",
            does="what was saved",
        ),
        "openai": Entry(
            "gapeval.models.openai_api:OpenAIModel",
            "a model behind an OpenAI-compatible API (hosted, OpenRouter, vLLM, vllm-omni): openai:MODEL, "
            "--model-opt base_url=URL, generation=images|chat",
            extra="judge",
            example="openai:gpt-image-1",
            does="und gen edit",
        ),
        "pair": Entry(
            "gapeval.models.pair:PairModel",
            "two models as one, the non-unified baseline: pair:UND_SPEC+GEN_SPEC "
            "(options und.KEY=VALUE, gen.KEY=VALUE)",
            example="pair:openai:gpt-5-mini+http://127.0.0.1:8900",
            does="und of the first; gen, edit of the second",
        ),
        "janus": Entry(
            "gapeval.models.janus:JanusModel",
            "Janus / Janus-Pro in transformers: janus:PATH_OR_HUB_ID (understands, generates; cannot edit)",
            extra="transformers",
            example="janus:deepseek-community/Janus-Pro-1B",
            does="und gen",
        ),
        "emu3": Entry(
            "gapeval.models.emu3:Emu3Model",
            "Emu3 in transformers, chat and generation checkpoints: emu3:CHAT_PATH,GEN_PATH",
            extra="transformers",
            example="emu3:BAAI/Emu3-Chat-hf,BAAI/Emu3-Gen-hf",
            does="und gen",
        ),
        "vlm": Entry(
            "gapeval.models.vlm:VLMModel",
            "an understanding-only VLM (AutoModelForImageTextToText + its chat template): vlm:PATH_OR_HUB_ID",
            extra="transformers",
            example="vlm:Qwen/Qwen2.5-VL-3B-Instruct",
            does="und",
        ),
        "diffusers": Entry(
            "gapeval.models.diffusion:DiffusersModel",
            "a diffusers pipeline, text-to-image or edit (class detected, or pipeline=CLASS): "
            "diffusers:PATH_OR_HUB_ID",
            extra="diffusers",
            example="diffusers:Qwen/Qwen-Image-Edit",
            does="gen and/or edit, from the pipeline",
        ),
        "http": Entry(
            "gapeval.models.remote:RemoteModel",
            "a model server (gapeval serve, or the standalone template in its own environment): "
            "http://HOST:PORT",
            example="http://127.0.0.1:8900",
            does="what the server declares",
        ),
    },
)
JUDGES = Registry(
    "judge",
    "gapeval.judges",
    {
        "rules": Entry(
            "gapeval.judges.rules:RulesJudge",
            "exact rules: multiple-choice option, counting targets, normalised match; "
            "unchanged/copied images",
            example="rules",
        ),
        "recorded": Entry(
            "gapeval.judges.recorded:RecordedJudge",
            "the authors' own verdicts saved beside replayed outputs (new_res.json)",
            example="recorded",
        ),
        "scene": Entry(
            "gapeval.judges.scene:SceneJudge",
            "exact judge of the built-in shapes world (answers by rule, images parsed into scenes)",
            example="scene",
        ),
        "noisy": Entry(
            "gapeval.judges.noisy:NoisyJudge",
            "the scene judge made wrong at known rates per direction, to audit and correct: "
            "noisy:und=SENS/FP,gen=SENS/FP[,seed=N]",
            example="noisy:und=0.95/0.05,gen=0.8/0.15",
        ),
        "openai": Entry(
            "gapeval.judges.vlm:VLMJudge",
            "a VLM through any OpenAI-compatible API: openai:MODEL (default gpt-5-mini), --base-url URL, "
            "--protocol default|paper",
            extra="judge",
            example="openai:gpt-5-mini",
        ),
    },
)
SUITES = Registry(
    "suite",
    "gapeval.suites",
    {
        "shapes-v1": Entry(
            "gapeval.suites.shapes:ShapesSource",
            "the built-in procedural world: 1280 held-out items, 320 per category, exact judges",
            example="shapes-v1",
        ),
        "shapes-v1-mini": Entry(
            "gapeval.suites.shapes:ShapesSource",
            "96 items of the same world, for quick runs and CI",
            example="shapes-v1-mini",
        ),
        "shapes-v2": Entry(
            "gapeval.suites.shapes:ShapesSource",
            "the items of shapes-v1, each with a rendered reference image of its generation target (for "
            "auditing a VLM judge against the exact one)",
            example="shapes-v2",
        ),
        "shapes-v2-mini": Entry(
            "gapeval.suites.shapes:ShapesSource",
            "the items of shapes-v1-mini, with reference images",
            example="shapes-v2-mini",
        ),
        "gapeval": Entry(
            "gapeval.suites.official:FetchedSource",
            "the published GapEval snapshot (fetch it first: gapeval fetch gapeval)",
            example="gapeval",
        ),
    },
)
EXECUTORS = Registry(
    "executor",
    "gapeval.executors",
    {
        "local": Entry(
            "gapeval.executors.local:LocalExecutor",
            "this process: batches of the adapter's size, each output committed as it is produced",
            example="local",
        ),
        "ray": Entry(
            "gapeval.executors.ray:RayExecutor",
            "model replicas as Ray actors (local or a cluster); results stream back to the one writer",
            extra="ray",
            example="ray",
        ),
    },
)
REPORTS = Registry(
    "report",
    "gapeval.reports",
    {
        "markdown": Entry(
            "gapeval.report.markdown:MarkdownReport",
            "report.md and report.json in the run directory",
            example="markdown",
        ),
    },
)


def load_py(target: str) -> Any:
    """An unregistered class from ``path/to/file.py:Class`` or ``package.module:Class``.

    A file is imported as a real module (registered in ``sys.modules`` before it runs), so dataclasses,
    ``from __future__ import annotations`` and pickling work in it as in any installed module.

    Raises:
        GapevalError: The target is malformed, missing, or does not define the class.

    """
    where, _, attr = target.rpartition(":")
    if not where or not attr:
        raise GapevalError(f"py target {target!r} is not FILE.py:Class or module:Class", field="model")
    if where.endswith(".py"):
        path = Path(where).resolve()
        if not path.is_file():
            raise GapevalError("file does not exist", file=where, field="model")
        name = f"gapeval_user_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:10]}"
        module = sys.modules.get(name)
        if module is None:
            mod_spec = importlib.util.spec_from_file_location(name, path)
            if mod_spec is None or mod_spec.loader is None:
                raise GapevalError("not an importable Python file", file=where, field="model")
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            try:
                mod_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise GapevalError(f"cannot import {where!r} ({exc})", field="model") from exc
    if not hasattr(module, attr):
        raise GapevalError(f"{where} has no class {attr!r}", field="model")
    return getattr(module, attr)
