"""The built-in unified model as an adapter: ``toy`` (shipped weights) or ``toy:PATH.pt``."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gapeval.errors import GapevalError
from gapeval.models.base import Capabilities, GenerateRequest, ImageOutput, TextOutput, UnderstandRequest
from gapeval.suites.base import Suite

SHIPPED = "shapes-v1.pt"


def shipped_checkpoint() -> Path:
    """The weights that ship with the package."""
    return Path(str(resources.files("gapeval.toy") / "weights" / SHIPPED))


class ToyModel:
    """A small decoder-only transformer over words and image codes, trained on the shapes world."""

    capabilities = Capabilities(understands=True, generates=True, edits=True)

    def __init__(self, checkpoint: Path, batch_size: int = 256) -> None:
        from gapeval.toy.train import load_checkpoint

        if not checkpoint.is_file():
            raise GapevalError("checkpoint does not exist", file=checkpoint, field="model")
        self.checkpoint = checkpoint
        self.model, self.vocab, self.tokenizer, self.meta = load_checkpoint(checkpoint)
        self.batch_size = batch_size
        self.name = "toy" if checkpoint == shipped_checkpoint() else f"toy:{checkpoint}"

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], suite: Suite) -> ToyModel:
        """``toy`` loads the shipped weights; ``toy:PATH`` a checkpoint from ``gapeval toy train``."""
        return cls(Path(arg) if arg else shipped_checkpoint(), int(options.get("batch_size", "256")))

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
