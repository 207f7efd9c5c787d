"""A model adapter to copy: one file, one class. Run it with ``-m py:examples/my_adapter.py:MyModel``.

To plug in your own model, replace the bodies of ``_load``, ``understand`` and ``generate`` with calls to
it; everything else (resume, seeds, batching, judging, scoring) is gapeval's. To give it a family name,
add one line to ``gapeval.registry.MODELS`` or an entry point in your package::

    [project.entry-points."gapeval.models"]
    mymodel = "my_package.my_adapter:MyModel"

This example runs as it is: it answers every question with the same text and draws a blank canvas, which
is a useful floor to compare a real model against (and shows what the judges make of a model that knows
nothing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from gapeval.errors import GapevalError
from gapeval.models.base import (
    Capabilities,
    GenerateRequest,
    ImageOutput,
    ModelContext,
    TextOutput,
    UnderstandRequest,
)


@dataclass
class MyModel:
    """Answers ``answer`` to every question and draws a ``size`` x ``size`` canvas of ``colour``."""

    weights: Path | None = None
    answer: str = "I do not know."
    size: int = 48
    colour: str = "white"
    # What the model can do: requests it cannot serve are recorded as unsupported, never as wrong.
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(edits=False))
    # Requests per call the executor hands over (a GPU model wants more; an API client, concurrency).
    batch_size: int = 16
    name: str = "my-model"
    _model: Any = None

    # Options come from --model-opt KEY=VALUE, as strings; unknown keys are an error, not a silent typo.
    OPTIONS = ("answer", "size", "colour")

    @classmethod
    def _check(cls, options: dict[str, str]) -> None:
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            raise GapevalError(
                f"unknown option {unknown[0]!r}; known: {', '.join(cls.OPTIONS)}", field="--model-opt"
            )

    @classmethod
    def identify(cls, arg: str, options: dict[str, str], context: ModelContext) -> dict[str, Any]:
        """Who this model is, said cheaply and *without loading it*: a resume must match it.

        Hash a small checkpoint; for a large one give its size and time, or a hub revision.
        """
        cls._check(options)
        if not arg:
            return {"weights": None}
        path = Path(arg)
        if not path.is_file():
            raise GapevalError("weights file does not exist", file=path, field="model")
        return {"weights": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: ModelContext) -> MyModel:
        """``py:my_adapter.py:MyModel`` (arg empty) or a family spec ``mymodel:WEIGHTS``; loads the model.

        Called where the model runs, and only when a run has work left to do.
        """
        cls._check(options)
        try:
            size = int(options.get("size", "48"))
        except ValueError as exc:
            raise GapevalError("size must be an integer", field="--model-opt") from exc
        model = cls(
            weights=Path(arg) if arg else None,
            answer=options.get("answer", cls.answer),
            size=size,
            colour=options.get("colour", cls.colour),
        )
        model._model = model._load()
        return model

    def _load(self) -> Any:
        # Your model: e.g. transformers' AutoModel.from_pretrained(self.weights), moved to its device.
        return None

    def describe(self) -> dict[str, Any]:
        """Recorded in the run's manifest."""
        return {
            "family": "my-model",
            "weights": str(self.weights) if self.weights else None,
            "answer": self.answer,
        }

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        """One answer per request, in order. ``r.images`` are local file paths; ``r.seed`` is its own."""
        return [TextOutput(text=self.answer, meta={"prompt_chars": len(r.prompt)}) for r in requests]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """One RGB image per request, in order; seed each request from ``r.seed``, never from its batch."""
        return [ImageOutput(image=Image.new("RGB", (self.size, self.size), self.colour)) for _ in requests]
