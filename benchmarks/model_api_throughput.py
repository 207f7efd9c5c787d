"""Throughput of the OpenAI-compatible model adapter against a loopback endpoint with fixed latency.

646 items x 2 directions (text answers through chat completions, images through the images API), every
request answered after 300 ms by a server in its own process, at concurrency 32. The ideal is
requests x latency / concurrency; the figure is wall time over ideal (target <= 1.25, like the judge).

    .venv/bin/python benchmarks/model_api_throughput.py [--concurrency 32] [--latency 0.3] [--items 646]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from gapeval import api
from gapeval.testing.openai_server import ServerProcess

CATEGORIES = ["Instruction Following", "Numerical Perception", "World Knowledge", "Reasoning"]


def make_suite(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    lines = [
        json.dumps({"id": f"q{i}", "category": CATEGORIES[i % 4], "und": {"prompt": f"question {i}?"},
                    "gen": {"prompt": f"draw {i}"}, "refs": {"text": "x"}})
        for i in range(n)
    ]  # fmt: skip
    (folder / "suite.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "suite.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--items", type=int, default=646)
    args = parser.parse_args()
    os.environ["GAPEVAL_BENCH_KEY"] = "sk-bench-not-a-real-key"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        suite = make_suite(root / "suite", args.items)
        server = ServerProcess("model", args.latency).__enter__()
        base_url = server.base_url
        opts = {
            "base_url": base_url,
            "api_key_env": "GAPEVAL_BENCH_KEY",
            "concurrency": str(args.concurrency),
        }
        t0 = time.perf_counter()
        res = api.run(str(suite), "openai:bench-model", out=root / "run", judges=(), model_options=opts)
        wall = time.perf_counter() - t0
        seen = server.stop()
        n = res.stats.done + res.stats.failed
        ideal = n * args.latency / args.concurrency
        print(
            f"outputs: {res.stats.done} done, {res.stats.failed} failed; {seen} requests seen by the server"
        )
        print(
            f"concurrency {args.concurrency}, latency {args.latency:.2f} s: wall {wall:.2f} s "
            f"(run, store and suite load included), ideal {ideal:.2f} s, ratio {wall / ideal:.3f} "
            "(target <= 1.25)"
        )


if __name__ == "__main__":
    main()
