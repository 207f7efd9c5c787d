"""A model whose cost is a fixed sleep per request (for executor overhead benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from PIL import Image

from gapeval.models.base import Capabilities, GenerateRequest, ImageOutput, TextOutput, UnderstandRequest


class SleepModel:
    name = "sleep"
    capabilities = Capabilities()

    def __init__(self, per_item_s: float, batch_size: int) -> None:
        self.per_item_s, self.batch_size = per_item_s, batch_size

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: Any) -> SleepModel:
        return cls(float(options.get("per_item_ms", "50")) / 1000, int(options.get("batch_size", "8")))

    def describe(self) -> dict[str, Any]:
        return {"family": "sleep", "per_item_s": self.per_item_s}

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        time.sleep(self.per_item_s * len(requests))
        return [TextOutput(text=f"answer {r.seed % 9}") for r in requests]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        time.sleep(self.per_item_s * len(requests))
        return [ImageOutput(image=Image.new("RGB", (48, 48), (r.seed % 256, 0, 0))) for r in requests]
