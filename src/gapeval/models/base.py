"""The unified-model protocol every adapter implements, and how a model spec becomes a model.

An adapter is one module exposing a class (the contract is :class:`UnifiedModel`); one line in
:data:`gapeval.registry.MODELS`, or an entry point in the ``gapeval.models`` group, gives it a family name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from gapeval.registry import MODELS, load_py
from gapeval.suites.base import Suite


class Capabilities(BaseModel):
    """What a model can do; requests it cannot serve are recorded as unsupported, not as wrong.

    Attributes:
        understands: Answers image + text questions with text.
        generates: Draws an image from text alone.
        edits: Edits an input image following text (independent of ``generates``: an edit-only pipeline
            has ``generates=False, edits=True``).

    """

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


class ModelContext(BaseModel):
    """What an adapter may know about the suite it runs on (it travels with the model spec).

    Attributes:
        suite_name: The suite's name.
        suite_root: The folder the suite was loaded from (empty for generated suites).
        sources: Item id -> its source folder relative to ``suite_root`` (e.g. ``data_12``).

    """

    model_config = ConfigDict(frozen=True)

    suite_name: str = ""
    suite_root: str = ""
    sources: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, suite: Suite) -> ModelContext:
        """The context of a loaded suite."""
        return cls(
            suite_name=suite.name, suite_root=suite.root, sources={i.id: i.source for i in suite.items}
        )


@runtime_checkable
class UnifiedModel(Protocol):
    """A model that understands and generates images: the contract every adapter keeps.

    An adapter is one class (see ``docs/adapters.md`` and ``examples/my_adapter.py``):

    - ``from_spec(arg, options, context)`` (classmethod) builds it. ``arg`` is what follows the family
      name in the spec (``toy:ckpt.pt`` -> ``"ckpt.pt"``; empty for ``py:`` adapters), ``options`` are the
      ``--model-opt KEY=VALUE`` pairs as strings (unknown keys should be an error), and ``context`` is
      the :class:`ModelContext`. It is called where the model runs, only when there is work to do.
    - ``identify(arg, options, context)`` (classmethod, optional) says cheaply, *without loading
      weights*, what identifies the model (a checkpoint's hash, a hub revision); a resume must match it.
      Without it the identity is the adapter's class.
    - ``name``: a short display name; ``capabilities``: what it can do (requests it cannot serve are
      recorded as unsupported, not wrong); ``batch_size``: requests per call it prefers (default 8).
    - ``understand`` / ``generate`` take a list and return one output per request, in order. Images
      in requests are absolute local paths; returned images are RGB PIL images. An exception, or a
      list of the wrong length, fails those requests (recorded with the message), never the run.
    - Seeds are per request: a request's output depends on its seed, never on its batch.
    - ``describe()``: a JSON-able description recorded in the manifest (family, parameters, decoding).
    """

    name: str
    capabilities: Capabilities

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: ModelContext) -> UnifiedModel:
        """Build the model (loading its weights)."""
        ...

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        """Answer each request with text."""
        ...

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """Draw (or edit) one image per request."""
        ...

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (family, id, revision, settings) recorded in the run manifest."""
        ...


DEFAULT_BATCH_SIZE = 8


def available_models() -> dict[str, str]:
    """Known model families and a one-line description of each."""
    return {
        **MODELS.describe(),
        "py": "any adapter class, unregistered: py:path/to/adapter.py:Class[:ARG] or py:pkg.mod:Class[:ARG]",
    }


def model_class(spec: str) -> tuple[Any, str]:
    """The adapter class a model spec names, and the argument to pass it (imports lazily)."""
    family, _, arg = spec.partition(":")
    if family == "py":  # py:TARGET:Class[:ARG], ARG handed to the class like a family's argument
        parts = arg.split(":", 2)
        return load_py(":".join(parts[:2])), parts[2] if len(parts) == 3 else ""
    return MODELS.load(family), arg


def model_identity(spec: str, options: Mapping[str, str], context: ModelContext) -> dict[str, JsonValue]:
    """What identifies the model, without loading it (see :meth:`UnifiedModel` ``identify``)."""
    cls, arg = model_class(spec)
    identify = getattr(cls, "identify", None)
    found: dict[str, JsonValue] = dict(identify(arg, dict(options), context)) if identify else {}
    module = str(cls.__module__)
    if module.startswith("gapeval_user_"):  # a py:FILE.py adapter: name the file, not its path hash
        module = "py:" + module.removeprefix("gapeval_user_").rsplit("_", 1)[0]
    return {"adapter": f"{module}:{cls.__qualname__}", **found}


def file_identity(path: Path, full_hash_below: int = 256 * 2**20) -> dict[str, JsonValue]:
    """A weights file's identity: its SHA-256 when small, else its size and modification time."""
    st = path.stat()
    if st.st_size <= full_hash_below:
        return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {"file": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def load_model(
    spec: str, *, suite: Suite | ModelContext, options: Mapping[str, str] | None = None
) -> UnifiedModel:
    """Build a model from ``family:argument`` (e.g. ``replay:janus-pro``).

    Args:
        spec: The model spec string.
        suite: The suite the model will run on, or its :class:`ModelContext`.
        options: Extra ``key=value`` settings for the adapter.

    """
    cls, arg = model_class(spec)
    context = suite if isinstance(suite, ModelContext) else ModelContext.of(suite)
    model: UnifiedModel = cls.from_spec(arg, dict(options or {}), context)
    return model
