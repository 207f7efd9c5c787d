"""VLM-judge throughput against a loopback OpenAI-compatible server with injected latency.

Judges 1,292 outputs (646 items x 2 directions) with 300 ms per request and reports the wall time next to
the ideal ``1292 x 0.3 s / concurrency`` (target at concurrency 32: within 1.25x), then judges again and
reports the requests made (target: zero).

    .venv/bin/python benchmarks/judge_throughput.py [--concurrency 32] [--latency 0.3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from gapeval import api
from gapeval.models.base import Capabilities, GenerateRequest, ImageOutput, TextOutput, UnderstandRequest
from gapeval.testing.openai_server import ServerProcess

CATEGORIES = ["Numerical Perception", "Instruction Following", "World Knowledge", "Reasoning"]


class EchoModel:
    """Answers instantly: a short text and a small image per request (stands in for any UMM)."""

    name = "echo"
    capabilities = Capabilities()

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: Any) -> EchoModel:
        return cls()

    def describe(self) -> dict[str, Any]:
        return {"family": "echo"}

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        return [TextOutput(text=f"answer for {r.item_id}") for r in requests]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        return [ImageOutput(image=Image.new("RGB", (64, 64), (r.seed % 256, 80, 160))) for r in requests]


def make_suite(folder: Path, n: int = 646) -> Path:
    (folder / "img").mkdir(parents=True)
    lines = []
    for i in range(n):
        Image.new("RGB", (64, 64), (i % 256, 120, 40)).save(folder / "img" / f"q{i}.png")
        lines.append(
            json.dumps(
                {
                    "id": f"q{i}",
                    "category": CATEGORIES[i % 4],
                    "und": {"prompt": f"question {i}?", "images": [f"img/q{i}.png"]},
                    "gen": {"prompt": f"edit {i}", "input_image": f"img/q{i}.png"},
                    "refs": {"text": f"reference answer number {i} in several words here"},
                }
            )
        )
    (folder / "suite.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "suite.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.3)
    args = parser.parse_args()
    os.environ["GAPEVAL_BENCH_KEY"] = "sk-bench-not-a-real-key"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        suite = make_suite(root / "suite")
        run = api.run(str(suite), f"py:{Path(__file__).resolve()}:EchoModel", out=root / "run", judges=())
        n = run.stats.done
        # The server runs in its own process, as a real endpoint would: its parsing is not the judge's cost.
        server = ServerProcess("verdict", args.latency).__enter__()
        base_url = server.base_url
        opts = {
            "base_url": base_url,
            "api_key_env": "GAPEVAL_BENCH_KEY",
            "concurrency": str(args.concurrency),
        }
        t0 = time.perf_counter()
        (stats,) = api.judge(run.path, ["openai:bench-vlm"], options=opts).values()
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        (again,) = api.judge(run.path, ["openai:bench-vlm"], options=opts).values()
        wall2 = time.perf_counter() - t1
        first = server.stop()
        ideal = n * args.latency / args.concurrency
        print(
            f"outputs judged: {stats.judged} of {n} ({stats.requests} requests, {first} seen by the server, "
            f"{stats.failed} failed)"
        )
        print(
            f"concurrency {args.concurrency}, latency {args.latency:.2f} s: wall {wall:.2f} s, "
            f"ideal {ideal:.2f} s, "
            f"ratio {wall / ideal:.3f} (target <= 1.25)"
        )
        print(f"repeat judging: {again.requests} requests, {again.cached} cached, {wall2:.2f} s")


if __name__ == "__main__":
    main()
