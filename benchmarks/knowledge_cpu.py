"""End-to-end wall time of the default knowledge experiments on the built-in model (CPU).

Runs ``gapeval knowledge inject`` and ``gapeval knowledge edit`` with their built-in specs exactly as a
user would: no options, from an empty working folder (so the default, relative output folder is used),
nothing reused. Prints each one's wall time against the 15-minute target, the training and evaluation
split, the transfer lines the command printed, and every cell of the matrix (the figures the README and
docs/knowledge.md quote come from this output).

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
    parser.add_argument("--out", type=Path, default=Path("bench-knowledge"), help="One empty folder each.")
    parser.add_argument("--only", choices=("inject", "edit"))
    args = parser.parse_args()
    gapeval = [sys.executable, "-m", "gapeval.cli"]
    print(f"cpu cores visible: {os.cpu_count()}; torch threads per spec: 2")
    for experiment in ("inject", "edit"):
        if args.only and experiment != args.only:
            continue
        cwd = args.out / experiment
        shutil.rmtree(cwd, ignore_errors=True)
        cwd.mkdir(parents=True)
        folder = cwd / f"knowledge-{experiment}"  # the command's default folder
        t0 = time.perf_counter()
        done = subprocess.run([*gapeval, "knowledge", experiment], capture_output=True, text=True,
                              check=False, cwd=cwd)  # fmt: skip
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
        print("  arm, probe, direction: accuracy (change from baseline, 95% interval), x100")
        for c in result["cells"]:
            change = "" if c["delta"] is None else f" ({100 * c['delta']:+.1f}"
            if c["delta"] is not None:
                ci = "" if c["low"] is None else f" [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]"
                change += ci + ")"
            print(f"  {c['arm']}, {c['probe']}, {c['direction']}: {100 * c['acc']:.1f}{change}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
