"""End-to-end wall time of the default knowledge experiments on the built-in model (CPU).

Runs ``gapeval knowledge inject`` and ``gapeval knowledge edit`` with their built-in specs, each in a
fresh folder (nothing reused), as a user would, and prints each one's wall time against the 15-minute
target, the training and evaluation split, and the transfer lines the command printed.

    python benchmarks/knowledge_cpu.py [--out DIR] [--only inject|edit]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 15 * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-knowledge"))
    parser.add_argument("--only", choices=("inject", "edit"))
    args = parser.parse_args()
    gapeval = [sys.executable, "-m", "gapeval.cli"]
    print(f"cpu cores visible: {os.cpu_count()}; torch threads per spec: 2")
    for experiment in ("inject", "edit"):
        if args.only and experiment != args.only:
            continue
        folder = args.out / experiment
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        done = subprocess.run([*gapeval, "knowledge", experiment, "-o", str(folder)], capture_output=True,
                              text=True, check=False)  # fmt: skip
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            print(done.stdout, done.stderr)
            return 1
        result = json.loads((folder / "knowledge.json").read_text())
        secs = result["seconds"]
        print(f"\n{experiment}: {wall:.0f} s end to end ({wall / TARGET_S:.2f}x the 15-min target); "
              f"training {secs['train']:.0f} s, evaluation {secs['eval']:.0f} s")  # fmt: skip
        for line in done.stdout.splitlines():
            if " evaluated: " in line:
                print("  " + line.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
