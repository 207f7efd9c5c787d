"""A deterministic test model that logs every request it serves (to prove what a resume redoes)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

from PIL import Image

from gapeval.models.base import Capabilities, GenerateRequest, ImageOutput, TextOutput, UnderstandRequest


class SlowModel:
    name = "slow"
    capabilities = Capabilities()

    def __init__(self, options: dict[str, str]) -> None:
        self.log = options["log"]
        self.delay = float(options.get("delay", "0"))

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: Any) -> SlowModel:
        return cls(options)

    def describe(self) -> dict[str, Any]:
        return {"family": "test-slow"}

    def _record(self, requests: Sequence[UnderstandRequest | GenerateRequest], direction: str) -> None:
        with open(self.log, "a") as fh:
            for r in requests:
                fh.write(json.dumps([r.item_id, direction, r.sample]) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        time.sleep(self.delay)

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        self._record(requests, "und")
        return [TextOutput(text=f"{r.item_id} says {r.seed % 7}") for r in requests]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        self._record(requests, "gen")
        return [
            ImageOutput(image=Image.new("RGB", (16, 16), (r.seed % 256, r.sample * 60, 9))) for r in requests
        ]


class DyingModel(SlowModel):
    """A SlowModel whose process dies (as if killed) the first time it is asked about ``die_on``.

    ``marker`` makes the death happen once across processes: a replacement replica serves the batch.
    """

    def __init__(self, options: dict[str, str]) -> None:
        super().__init__(options)
        self.die_on, self.marker = options["die_on"], options["marker"]

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: Any) -> DyingModel:
        return cls(options)

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        if any(r.item_id == self.die_on for r in requests) and not os.path.exists(self.marker):
            self._record(requests, "und")
            open(self.marker, "w").close()
            os._exit(1)
        return super().understand(requests)
