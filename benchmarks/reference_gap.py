"""Paper-compatible Gap Score: exactness on the published vectors, fit time, and fragility.

Prints: this machine's fingerprint and how many of the 17 published cases it reproduces bit for bit
(the float32 path depends on the CPU); the fit time per model (sequential) next to the time with 2
worker processes; the fragility of each score (largest change over refits with N(0, 1e-6) noise on the
input shares), summarised as median and max over the 12 random models; and, for every case this machine
does not reproduce, its difference from the published output next to that case's fragility.

    .venv/bin/python benchmarks/reference_gap.py [--perturbations 6]
"""

from __future__ import annotations

import argparse
import statistics
import time

from gapeval.scoring.reference_gap import fit_many, fragility
from gapeval.scoring.reference_platform import compare, fingerprint, published_cases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--perturbations", type=int, default=6)
    args = parser.parse_args()
    cases = published_cases()
    names = sorted(cases)
    tables = [cases[n]["rows"] for n in names]

    t0 = time.perf_counter()
    seq = fit_many(tables[:4], workers=1)
    t_seq = (time.perf_counter() - t0) / 4
    t0 = time.perf_counter()
    par = fit_many(tables, workers=2)
    t_par = (time.perf_counter() - t0) / len(tables)
    assert [r.gaps for r in seq] == [r.gaps for r in par[:4]]
    differing = compare(names, par)
    print(f"machine: {fingerprint()}")
    print(
        f"cases: {len(names)}; reproduced bit for bit: {len(names) - len(differing)}; "
        f"largest deviation from the authors' outputs: {max(differing.values(), default=0.0):.1e}"
    )
    print(
        f"fit time per model: {t_seq:.2f} s sequential, {t_par:.2f} s with 2 processes ({t_seq / t_par:.2f}x)"
    )

    spreads, means, within = [], [], 0
    for n, base in zip(names, par, strict=True):
        if not n.startswith("model_") and n not in differing:
            continue
        frag = fragility(cases[n]["rows"], base, n=args.perturbations, workers=2)
        if n.startswith("model_"):
            spreads += frag.max_abs_change
            means.append(frag.mean_max_abs_change)
        if n in differing:
            band = max(*frag.max_abs_change, frag.mean_max_abs_change)
            within += differing[n] <= band
            print(f"  {n:16s} differs by {differing[n]:.6f}; its fragility here {band:.6f}")
    print(
        f"fragility over {len(means)} random models x 4 categories, "
        f"{args.perturbations} refits at 1e-6 noise: "
        f"per-category change median {statistics.median(spreads):.4f}, max {max(spreads):.4f}; "
        f"gap_mean change median {statistics.median(means):.4f}, max {max(means):.4f}"
    )
    if differing:
        print(f"cases not reproduced whose difference lies within their fragility: {within}/{len(differing)}")


if __name__ == "__main__":
    main()
