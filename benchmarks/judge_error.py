"""Validation of the correction for judge error: a judge gap reads as a model gap, and the audit undoes it.

Each replication simulates one model with known abilities on J paired questions (a Rasch truth: question
easiness shared by both directions, sd 1), a judge with known error per direction that is harsher on
images than on text (by default: understanding sensitivity 0.95, false-pass rate 0.05; generation 0.75
and 0.15), and an audit: A outputs per direction drawn at random from the judged ones, whose truth is
known (people's labels, or an exact judge). It then fits

- the raw identified gap, from the judge's verdicts as they are;
- the corrected gap (``gapeval score --judge-audit``): the MIRT fit with the audit's misclassification
  layer, its 95% interval a percentile bootstrap over questions and audit together.

and reports, over the replications: the correlation of each with the true gap, their mean error, the
coverage of the corrected interval and of the raw (Wald) interval, and the mean interval width. Last, how
many audited outputs a given precision of the rates needs (Wilson half-width, positives and negatives
each).

    .venv/bin/python benchmarks/judge_error.py [--reps 200] [--questions 1280] [--audit 400] [--boot 100]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.stats import norm

from gapeval.scoring.judge_error import corrected_scores
from gapeval.scoring.mirt import Responses, fit

CATEGORIES = ["Instruction Following", "Numerical Perception", "World Knowledge", "Reasoning"]


def replicate(
    args: tuple[int, int, int, int, list[list[float]]],
) -> tuple[float, float, float, float, float, float, float]:
    """One world: true gap, raw gap with its Wald interval, corrected gap with its bootstrap interval."""
    seed, j, audit_n, n_boot, rates_list = args
    rates = np.array(rates_list)
    rng = np.random.default_rng(seed)
    theta_gen = rng.uniform(-0.5, 1.5)
    true_gap = rng.uniform(-1.5, 1.5)
    easiness = rng.normal(0.0, 1.0, j)
    p = 1 / (1 + np.exp(-(np.array([theta_gen + true_gap, theta_gen])[None, :] + easiness[:, None])))
    right = rng.random((j, 2)) < p
    seen = np.where(right, rng.random((j, 2)) < rates[:, 0], rng.random((j, 2)) < rates[:, 1])
    data = Responses(["m"], [f"q{k}" for k in range(j)], seen.astype(float)[None],
                     [CATEGORIES[k % 4] for k in range(j)])  # fmt: skip
    counts = []
    for d in range(2):
        idx = rng.choice(j, size=audit_n, replace=False)
        t, o = right[idx, d], seen[idx, d]
        counts.append([np.sum(t & o), np.sum(t & ~o), np.sum(~t & o), np.sum(~t & ~o)])
    (c,) = corrected_scores(data, np.array(counts, dtype=float), n_boot=n_boot, seed=seed)
    raw = fit(data)
    z = float(norm.ppf(0.975))
    se = float(raw.se_gap[0]) if raw.se_gap is not None else float("nan")
    assert c.low is not None and c.high is not None
    return true_gap, c.gap_raw, c.gap_raw - z * se, c.gap_raw + z * se, c.gap, c.low, c.high


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--questions", type=int, default=1280, help="questions per world (shapes-v1 has 1280)")
    ap.add_argument("--audit", type=int, default=400, help="audited outputs per direction")
    ap.add_argument("--boot", type=int, default=100, help="bootstrap resamples per corrected interval")
    ap.add_argument("--rates", default="0.95/0.05,0.75/0.15", help="und SENS/FP,gen SENS/FP")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    rates = [[float(x) for x in part.split("/")] for part in args.rates.split(",")]
    jobs = [(1000 + r, args.questions, args.audit, args.boot, rates) for r in range(args.reps)]
    t0 = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
            rows = np.array(list(pool.map(replicate, jobs, chunksize=4)))
    else:
        rows = np.array([replicate(j) for j in jobs])
    took = time.perf_counter() - t0
    true, raw, raw_lo, raw_hi, cor, lo, hi = rows.T
    (su, fu), (sg, fg) = rates
    print(f"{args.reps} worlds x {args.questions} questions; judge (sens/false-pass) und {su}/{fu}, "
          f"gen {sg}/{fg}; audit {args.audit} outputs per direction; {args.boot} resamples")  # fmt: skip
    print(f"{'':22s}{'corr with truth':>16s}{'mean error':>12s}{'95% coverage':>14s}{'mean width':>12s}")
    for name, est, a, b in (("raw gap (as judged)", raw, raw_lo, raw_hi), ("corrected gap", cor, lo, hi)):
        cover = np.mean((a <= true) & (true <= b))
        corr, error = np.corrcoef(est, true)[0, 1], np.mean(est - true)
        print(f"{name:22s}{corr:16.3f}{error:+12.3f}{100 * cover:13.1f}%{np.mean(b - a):12.2f}")
    print(f"took {took:.0f} s ({took / args.reps:.2f} s per world on {args.workers} workers)")
    z = float(norm.ppf(0.975))
    print("audited outputs a rate needs, for a 95% Wilson half-width of (each of positives and negatives):")
    print(f"{'rate':>8s}" + "".join(f"{f'±{h}':>8s}" for h in (0.1, 0.05, 0.025)))
    for p in (0.8, 0.9, 0.95):
        print(
            f"{p:8.2f}"
            + "".join(f"{int(np.ceil(z * z * p * (1 - p) / (h * h))):8d}" for h in (0.1, 0.05, 0.025))
        )


if __name__ == "__main__":
    main()
