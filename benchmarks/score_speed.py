"""How long default scoring takes, against the previous path measured in the same run.

1. ``gapeval score`` on a ``shapes-v1`` run of the built-in model (1,280 items, 3 images each), for the
   three methods, with default settings (6 fragility refits, 200 bootstrap resamples, 2 workers).
2. ``gapeval score --responses`` on a simulated 50 models x 646 items x 2 directions, all category groups.

Baselines: fragility as 6 separate fits in 2 spawned processes, and a new process pool for every
bootstrap group (what scoring did before the refits were batched and the pool shared).

    .venv/bin/python benchmarks/score_speed.py [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from gapeval import api
from gapeval.scoring.gap_analysis import bootstrap
from gapeval.scoring.mirt import Responses, fit
from gapeval.scoring.reference_gap import fragility, reference_gap
from gapeval.scoring.responses import from_records, write_csv


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def old_bootstrap_cost(data: Responses) -> float:
    """Fits plus 200 resamples per group, each group starting its own pool of 2 (the previous path)."""
    groups = [data] + [
        data.subset_items(np.flatnonzero(np.asarray(data.categories) == c))
        for c in sorted(set(data.categories))
    ]
    t0 = time.perf_counter()
    for g in groups:
        bootstrap(g, fit(g), 200, 0, 2, pool=None)
    return time.perf_counter() - t0


def simulated(m: int = 50, j: int = 646) -> Responses:
    rng = np.random.default_rng(0)
    theta = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], size=m)
    easy = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], size=j)
    p = 1 / (1 + np.exp(-(theta[:, None, :] + easy[None])))
    y = (rng.random(p.shape) < p).astype(float)
    cats = ["Instruction Following", "Numerical Perception", "World Knowledge", "Reasoning"]
    return Responses(
        [f"m{i}" for i in range(m)], [f"q{k}" for k in range(j)], y, [cats[k % 4] for k in range(j)]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, help="an existing shapes-v1 run (default: make one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or api.run("shapes-v1", "toy", out=Path(tmp) / "run").path
        for method in ("mirt", "reference", "both"):
            t, _ = timed(lambda m=method: api.score([run], method=m))  # type: ignore[misc]
            print(f"score {method:9s} on a shapes-v1 run: {t:5.2f} s")
        rec = api.read_runs([run])
        rows = [g.joint.shares() for g in api.score([run], n_boot=0).runs[0].categories.values()]
        base = reference_gap(rows)
        t_new, new = timed(lambda: fragility(rows, base, n=6))
        t_old, old = timed(lambda: fragility(rows, base, n=6, batched=False, workers=2))
        print(
            f"fragility (6 refits): batched {t_new:.2f} s, separate fits in 2 processes {t_old:.2f} s "
            f"({t_old / t_new:.1f}x); largest difference between the two {max(abs(a - b) for a, b in zip(new.max_abs_change, old.max_abs_change, strict=True)):.1e}"  # noqa: E501
        )
        data = from_records(rec)
        t_new, _ = timed(lambda: api.score([run], method="mirt", fragility_n=0))
        t_old = old_bootstrap_cost(data)
        print(
            f"MIRT, 5 groups x 200 resamples: shared pool {t_new:.2f} s (all of score), "
            f"a pool per group {t_old:.2f} s (bootstrap alone)"
        )

        csv = write_csv(simulated(), Path(tmp) / "responses.csv")
        t, res = timed(lambda: api.score(responses=csv))
        assert res.mirt is not None
        print(
            f"score --responses, 50 models x 646 items x 2 directions, {len(res.mirt.fits)} groups, "
            f"200 resamples: {t:.2f} s"
        )
        print(f"  same with a pool per group (bootstrap alone): {old_bootstrap_cost(simulated()):.2f} s")


if __name__ == "__main__":
    main()
