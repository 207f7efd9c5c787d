"""The built-in unified model as an adapter: ``toy`` (shipped weights) or ``toy:PATH.pt``."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import JsonValue

from gapeval.errors import GapevalError
from gapeval.models.base import (
    Capabilities,
    GenerateRequest,
    ImageOutput,
    ModelContext,
    TextOutput,
    UnderstandRequest,
    file_identity,
)

SHIPPED = "shapes-v1.pt"


def shipped_checkpoint() -> Path:
    """The weights that ship with the package."""
    return Path(str(resources.files("gapeval.toy") / "weights" / SHIPPED))


def checkpoint_path(arg: str) -> Path:
    """The checkpoint of ``toy`` (the shipped weights) or ``toy:PATH``.

    Raises:
        GapevalError: The checkpoint does not exist.

    """
    path = Path(arg) if arg else shipped_checkpoint()
    if not path.is_file():
        raise GapevalError("checkpoint does not exist", file=path, field="model")
    return path


class ToyModel:
    """A small decoder-only transformer over words and image codes, trained on the shapes world."""

    capabilities = Capabilities(understands=True, generates=True, edits=True)

    def __init__(self, checkpoint: Path, batch_size: int = 256) -> None:
        from gapeval.toy.train import load_checkpoint

        if not checkpoint.is_file():
            raise GapevalError("checkpoint does not exist", file=checkpoint, field="model")
        self.checkpoint = checkpoint
        self.model, self.vocab, self.tokenizer, self.meta = load_checkpoint(checkpoint)
        self.batch_size = batch_size  # requests per call the executor hands over
        self.name = "toy" if checkpoint == shipped_checkpoint() else f"toy:{checkpoint}"

    @staticmethod
    def _checkpoint(arg: str, options: dict[str, str]) -> Path:
        unknown = set(options) - {"batch_size"}
        if unknown:
            raise GapevalError(
                f"unknown toy option {sorted(unknown)[0]!r}; known: batch_size", field="--model-opt"
            )
        return checkpoint_path(arg)

    @classmethod
    def identify(cls, arg: str, options: dict[str, str], context: ModelContext) -> dict[str, JsonValue]:
        """The checkpoint's SHA-256 (2 MB: hashing it is cheaper than loading it)."""
        return file_identity(cls._checkpoint(arg, options))

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: ModelContext) -> ToyModel:
        """``toy`` loads the shipped weights; ``toy:PATH`` a checkpoint from ``gapeval toy train``."""
        try:
            batch = int(options.get("batch_size", "256"))
        except ValueError as exc:
            raise GapevalError("batch_size must be an integer", field="--model-opt") from exc
        return cls(cls._checkpoint(arg, options), batch)

    def describe(self) -> dict[str, Any]:
        """Checkpoint identity and training record, for the manifest."""
        return {
            "family": "toy",
            "checkpoint": str(self.checkpoint),
            "sha256": hashlib.sha256(self.checkpoint.read_bytes()).hexdigest(),
            "params": self.model.n_params(),
            "step": self.meta.get("step"),
            "decoding": {"und": "greedy", "gen": "sampled, temperature 1, codes only"},
        }

    def _codes(self, path: str) -> list[int]:
        with Image.open(path) as img:
            return [int(c) for c in self.tokenizer.encode_image(img)]

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        """Greedy answers."""
        from gapeval.toy.model import answer, und_prefix

        prefixes = [
            und_prefix(self.vocab, r.prompt, self._codes(r.images[0]) if r.images else None) for r in requests
        ]
        texts: list[str] = []
        for lo in range(0, len(prefixes), self.batch_size):
            texts += answer(self.model, self.vocab, prefixes[lo : lo + self.batch_size])
        return [TextOutput(text=t) for t in texts]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """Sample 9 image codes per request with the request's seed, then decode."""
        from gapeval.toy.model import draw, gen_prefix

        prefixes = [
            gen_prefix(self.vocab, r.prompt, self._codes(r.input_image) if r.input_image else None)
            for r in requests
        ]
        codes: list[list[int]] = []
        for lo in range(0, len(prefixes), self.batch_size):
            codes += draw(
                self.model,
                self.vocab,
                prefixes[lo : lo + self.batch_size],
                [r.seed for r in requests[lo : lo + self.batch_size]],
            )
        images = self.tokenizer.decode(np.asarray(codes, dtype=np.int64))
        return [
            ImageOutput(image=Image.fromarray(img), meta={"codes": c})
            for img, c in zip(images, codes, strict=True)
        ]
