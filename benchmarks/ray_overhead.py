"""Overhead of the Ray executor against the local one, with a model whose cost is a fixed sleep.

Every request costs exactly ``--per-item-ms`` (50 ms) of sleep inside the model, so any time beyond
``N x 50 ms / replicas`` is the executor's: planning, batching, shipping images and results, committing.
Runs the same suite (outputs only, no judging) three ways, each into a fresh run directory:

- the local executor (one model in this process): ideal ``N x 50 ms``;
- Ray with 1 replica: ideal ``N x 50 ms``;
- Ray with 2 replicas: ideal ``N x 50 ms / 2`` (target: within 1.2x);

and prints each wall time, its ratio to the ideal, and the per-request overhead
``(wall x replicas - N x 50 ms) / N``. Ray is started here once (``ray.init(num_cpus=2)``) before the
clock starts; starting the replicas is inside it.

    python benchmarks/ray_overhead.py [--suite shapes-v1] [--samples-gen 1] [--per-item-ms 50]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import ray

from gapeval import api

MODEL = f"py:{Path(__file__).with_name('sleep_model.py')}:SleepModel"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", default="shapes-v1")
    parser.add_argument("--samples-gen", type=int, default=1)
    parser.add_argument("--per-item-ms", type=float, default=50.0)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    opts = {"per_item_ms": str(args.per_item_ms), "batch_size": str(args.batch_size)}
    cost = args.per_item_ms / 1000
    tmp = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    try:
        for name, executor, replicas in (("local", "local", 1), ("ray x1", "ray", 1), ("ray x2", "ray", 2)):
            eopts = {"replicas": str(replicas)} if executor == "ray" else {}
            t0 = time.perf_counter()
            res = api.run(args.suite, MODEL, out=tmp / name.replace(" ", ""),
                          samples_gen=args.samples_gen, judges=[], model_options=opts, executor=executor,
                          executor_options=eopts)  # fmt: skip
            wall = time.perf_counter() - t0
            n = res.stats.done
            ideal = n * cost / replicas
            overhead_ms = 1000 * (wall * replicas - n * cost) / n
            print(f"{name}: {n} requests in {wall:.2f} s; ideal {ideal:.2f} s; {wall / ideal:.3f}x the "
                  f"ideal; overhead {overhead_ms:.2f} ms per request")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        ray.shutdown()


if __name__ == "__main__":
    main()
