"""The unified-model protocol every adapter implements, and the lazy registry that finds adapters.

An adapter is one module exposing a class with a ``from_spec`` classmethod; the registry maps a family
name to ``"module:Class"`` and imports it only when asked, so optional heavy dependencies stay optional.
Third-party packages can add families through the ``gapeval.models`` entry-point group.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from gapeval.errors import GapevalError
from gapeval.suites.base import Suite


class Capabilities(BaseModel):
    """What a model can do; requests it cannot serve are recorded as unsupported, not as wrong."""

    model_config = ConfigDict(frozen=True)

    understands: bool = True
    generates: bool = True
    edits: bool = True


class UnderstandRequest(BaseModel):
    """Image(s) + prompt -> text. ``images`` are absolute file paths."""

    model_config = ConfigDict(frozen=True)

    item_id: str
    prompt: str
    images: tuple[str, ...] = ()
    seed: int = 0
    sample: int = 0


class GenerateRequest(BaseModel):
    """Prompt [+ input image] -> image; an input image makes it an edit."""

    model_config = ConfigDict(frozen=True)

    item_id: str
    prompt: str
    input_image: str | None = None
    seed: int = 0
    sample: int = 0


class TextOutput(BaseModel):
    """A text answer, or the reason there is none (a failure, never a wrong answer)."""

    text: str | None = None
    error: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class ImageOutput(BaseModel):
    """A generated image (RGB), or the reason there is none."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Image.Image | None = None
    error: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


@runtime_checkable
class UnifiedModel(Protocol):
    """A model that understands and generates images.

    Implementations decide their own batching: the runner hands over lists and expects one output per
    request, in order. Seeds are per request (derived from the run seed, the item, the direction and the
    sample index), so results do not depend on how requests are batched.
    """

    name: str
    capabilities: Capabilities

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        """Answer each request with text."""
        ...

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """Draw (or edit) one image per request."""
        ...

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (family, id, revision, settings) recorded in the run manifest."""
        ...


#: family -> "module:Class". Adapters are imported lazily.
MODEL_FAMILIES: dict[str, str] = {
    "replay": "gapeval.models.replay:ReplayModel",
    "toy": "gapeval.models.toy:ToyModel",
}
_DESCRIPTIONS: dict[str, str] = {
    "replay": "outputs already on disk in the authors' layout: replay:MODEL_DIR_NAME",
    "toy": "the built-in unified model trained on the shapes world (shipped weights, or toy:CHECKPOINT.pt)",
    "py": "any adapter class, unregistered: py:path/to/adapter.py:Class or py:pkg.mod:Class",
}


def available_models() -> dict[str, str]:
    """Known model families and a one-line description of each."""
    found = dict(_DESCRIPTIONS)
    for ep in entry_points(group="gapeval.models"):
        found.setdefault(ep.name, f"plugin ({ep.value})")
    return found


def _load_py(target: str) -> Any:
    """``path/to/file.py:Class`` or ``package.module:Class``."""
    where, _, attr = target.rpartition(":")
    if not where or not attr:
        raise GapevalError(f"py model {target!r} is not FILE.py:Class or module:Class", field="model")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise GapevalError("model file does not exist", file=path, field="model")
        mod_spec = importlib.util.spec_from_file_location(f"gapeval_user_model_{path.stem}", path)
        assert mod_spec is not None and mod_spec.loader is not None
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    if not hasattr(module, attr):
        raise GapevalError(f"{where} has no class {attr!r}", field="model")
    return getattr(module, attr)


def _resolve(family: str) -> Any:
    target = MODEL_FAMILIES.get(family)
    if target is None:
        for ep in entry_points(group="gapeval.models"):
            if ep.name == family:
                return ep.load()
        raise GapevalError(
            f"unknown model family {family!r}; known: {', '.join(available_models())}", field="model"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise GapevalError(
            f"model family {family!r} needs an optional dependency: {exc}", field="model"
        ) from exc
    return getattr(module, attr)


def load_model(spec: str, *, suite: Suite, options: Mapping[str, str] | None = None) -> UnifiedModel:
    """Build a model from ``family:argument`` (e.g. ``replay:janus-pro``).

    Args:
        spec: The model spec string.
        suite: The suite the model will run on (adapters such as replay need its root).
        options: Extra ``key=value`` settings for the adapter.

    """
    family, _, arg = spec.partition(":")
    if family == "py":
        cls = _load_py(arg)
        arg = ""
    else:
        cls = _resolve(family)
    model: UnifiedModel = cls.from_spec(arg, dict(options or {}), suite)
    return model
