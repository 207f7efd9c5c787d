"""Paper-compatible Gap Score: exactness on the published vectors, fit time, and fragility.

Prints, for the 17 published cases: the largest deviation from the authors' outputs; the fit time per
model (sequential) next to the time with 2 worker processes; and the fragility of each score (largest
change over refits with N(0, 1e-6) noise on the input shares), summarised as median and max.

    .venv/bin/python benchmarks/reference_gap.py [--perturbations 6]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from gapeval.scoring.reference_gap import fit_many, fragility

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "gap-score-vectors.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--perturbations", type=int, default=6)
    args = parser.parse_args()
    cases = json.loads(VECTORS.read_text())["cases"]
    names = sorted(cases)
    tables = [cases[n]["rows"] for n in names]

    t0 = time.perf_counter()
    seq = fit_many(tables[:4], workers=1)
    t_seq = (time.perf_counter() - t0) / 4
    t0 = time.perf_counter()
    par = fit_many(tables, workers=2)
    t_par = (time.perf_counter() - t0) / len(tables)
    assert [r.gaps for r in seq] == [r.gaps for r in par[:4]]
    worst = max(
        max(
            abs(a - b)
            for a, b in zip([*r.gaps, r.gap_mean], [*cases[n]["gaps"], cases[n]["gap_mean"]], strict=True)
        )
        for n, r in zip(names, par, strict=True)
    )
    print(f"cases: {len(names)}; largest deviation from the authors' outputs: {worst:.1e}")
    print(
        f"fit time per model: {t_seq:.2f} s sequential, {t_par:.2f} s with 2 processes ({t_seq / t_par:.2f}x)"
    )

    spreads, means = [], []
    for n, base in zip(names, par, strict=True):
        if not n.startswith("model_"):
            continue
        frag = fragility(cases[n]["rows"], base, n=args.perturbations, workers=2)
        spreads += frag.max_abs_change
        means.append(frag.mean_max_abs_change)
    print(
        f"fragility over {len(means)} random models x 4 categories, "
        f"{args.perturbations} refits at 1e-6 noise: "
        f"per-category change median {statistics.median(spreads):.4f}, max {max(spreads):.4f}; "
        f"gap_mean change median {statistics.median(means):.4f}, max {max(means):.4f}"
    )


if __name__ == "__main__":
    main()
