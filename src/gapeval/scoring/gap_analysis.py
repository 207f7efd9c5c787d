"""The identified gap with uncertainty and diagnostics, from a response tensor.

- gap per model (overall and per category), with standard errors and Wald intervals from the observed
  information, and bootstrap percentile intervals over questions (both directions of a question
  resampled together, stratified by category). In simulation (benchmarks/mirt_recovery.py) the Wald
  intervals cover at the nominal rate and the percentile intervals slightly below it, so the Wald
  interval is the one shown first;
- the paper-scale transform ``|gap| / (1 + |gap|)`` for comparison with the reference score;
- a "no gap" test per model and category: McNemar's exact test on the discordant questions, with Holm's
  correction over every model x (overall + categories) test;
- item fit and model fit (outfit mean squares), and the correlation of the two abilities across models.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel
from scipy.stats import binomtest, norm

from gapeval.scoring.mirt import MirtFit, Responses, expected_responses, fit, refit_newton


class GapEstimate(BaseModel):
    """One model's gap in one group of questions."""

    model: str
    group: str
    theta_und: float
    theta_gen: float
    gap: float
    se: float | None
    wald_low: float | None = None
    wald_high: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    gap01: float
    n10: int
    n01: int
    p_nogap: float
    p_adjusted: float | None = None
    at_boundary: bool = False


class FitInfo(BaseModel):
    """How a fit went."""

    group: str
    n_models: int
    n_questions: int
    structure: str
    loglik: float
    grad_norm: float
    converged: bool
    iterations: int
    sd_und: float
    sd_gen: float
    rho: float


class GapAnalysis(BaseModel):
    """Everything ``gapeval score --method mirt`` reports."""

    estimates: list[GapEstimate]
    fits: list[FitInfo]
    ability_correlation: float | None
    item_fit: list[tuple[str, float]]
    model_fit: list[tuple[str, float]]
    n_boot: int
    ci: float


def discordant(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per model, expected counts of (und right, gen wrong) and (und wrong, gen right) on paired questions."""
    u, g = y[:, :, 0], y[:, :, 1]
    both = ~np.isnan(u) & ~np.isnan(g)
    u0, g0 = np.where(both, u, 0.0), np.where(both, g, 0.0)
    return (u0 * (1 - g0)).sum(axis=1), ((1 - u0) * g0).sum(axis=1)


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values."""
    order = np.argsort(p)
    adj = np.empty(len(p))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


_BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def resample_weights(n_items: int, strata: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Bootstrap counts of questions, drawn within each stratum (category)."""
    w = np.zeros(n_items)
    for idx in strata:
        np.add.at(w, rng.choice(idx, size=len(idx), replace=True), 1.0)
    return w


def _boot_job(args: tuple[np.ndarray, MirtFit, list[np.ndarray], int, int]) -> tuple[np.ndarray, int]:
    y, base, strata, seed, n = args
    rng = np.random.default_rng(seed)
    gaps, fallback = [], 0
    for _ in range(n):
        w = resample_weights(y.shape[1], strata, rng)
        x, ok = refit_newton(y, base, w)
        if ok:
            m = y.shape[0]
            gaps.append(x[0 : 2 * m : 2] - x[1 : 2 * m : 2])
        else:  # rare: a resample far from the base fit gets a full optimisation
            fallback += 1
            gaps.append(fit(y, weights=w, start=base.params, with_se=False).gap)
    return np.asarray(gaps), fallback


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """Processes for bootstrap jobs, started once (each spawn costs about a second of imports).

    One BLAS thread per worker: two workers with multi-threaded BLAS each oversubscribe the cores
    (measured: 48 s instead of a few for 200 resamples on 2 cores). Fresh (spawned) workers read it.
    """
    if workers <= 1:
        yield None
        return
    saved = {k: os.environ.get(k) for k in _BLAS_VARS}
    os.environ.update(dict.fromkeys(_BLAS_VARS, "1"))
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            yield pool
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def bootstrap(
    data: Responses,
    base: MirtFit,
    n_boot: int = 200,
    seed: int = 0,
    workers: int = 1,
    pool: ProcessPoolExecutor | None = None,
) -> tuple[np.ndarray, int]:
    """Gaps refitted on ``n_boot`` resamples of questions (stratified by category).

    Args:
        data: The responses.
        base: The fit to refit from (with its Hessian).
        n_boot: Resamples.
        seed: Seed of the resampling.
        workers: How many jobs to split the resamples into.
        pool: Processes to run the jobs in (see :func:`worker_pool`); one is started if needed.

    Returns:
        (n_boot, M) gaps, and how many resamples needed a full optimisation instead of Newton steps.

    """
    if base.hessian is None:
        raise ValueError("the base fit needs its Hessian (fit with with_se=True)")
    cats = np.asarray(data.categories)
    strata = [np.flatnonzero(cats == c) for c in sorted(set(data.categories))]
    per = [n_boot // workers + (1 if k < n_boot % workers else 0) for k in range(workers)]
    jobs = [(data.y, base, strata, seed * 1000 + k, n) for k, n in enumerate(per) if n]
    if len(jobs) == 1:
        results = [_boot_job(jobs[0])]
    elif pool is not None:
        results = list(pool.map(_boot_job, jobs))
    else:
        with worker_pool(len(jobs)) as own:
            assert own is not None
            results = list(own.map(_boot_job, jobs))
    return np.concatenate([g for g, _ in results]), sum(f for _, f in results)


@dataclass
class _Group:
    name: str
    data: Responses


def analyse(
    data: Responses,
    *,
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
    workers: int = 1,
    per_category: bool = True,
    n_fit_items: int = 10,
) -> GapAnalysis:
    """Fit overall and per category, with intervals, tests and diagnostics."""
    groups = [_Group("Overall", data)]
    if per_category:
        for cat in sorted(set(data.categories)):
            idx = np.flatnonzero(np.asarray(data.categories) == cat)
            groups.append(_Group(cat, data.subset_items(idx)))
    estimates: list[GapEstimate] = []
    fits: list[FitInfo] = []
    overall: MirtFit | None = None
    with worker_pool(workers if n_boot > 0 else 1) as pool:
        for grp in groups:
            res = fit(grp.data)
            overall = overall or res
            fits.append(
                FitInfo(
                    group=grp.name,
                    n_models=len(data.models),
                    n_questions=len(grp.data.items),
                    structure=res.structure,
                    loglik=res.loglik,
                    grad_norm=res.grad_norm,
                    converged=res.converged,
                    iterations=res.iterations,
                    sd_und=float(res.sd[0]),
                    sd_gen=float(res.sd[1]),
                    rho=float(res.rho),
                )
            )
            lo = hi = None
            if n_boot > 0:
                boots, _ = bootstrap(grp.data, res, n_boot, seed, workers, pool)
                alpha = (1 - ci) / 2
                lo, hi = np.quantile(boots, alpha, axis=0), np.quantile(boots, 1 - alpha, axis=0)
            z = float(norm.ppf(0.5 + ci / 2))
            n10, n01 = discordant(grp.data.y)
            # A direction answered all right (or all wrong) has no finite ML ability: the prior bounds it.
            shares = np.nanmean(grp.data.y, axis=1)
            boundary = np.any((shares <= 0.0) | (shares >= 1.0), axis=1)
            for m, name in enumerate(data.models):
                k10, k01 = round(float(n10[m])), round(float(n01[m]))
                p = binomtest(k10, k10 + k01, 0.5).pvalue if k10 + k01 else 1.0
                gap = float(res.gap[m])
                estimates.append(
                    GapEstimate(
                        model=name,
                        group=grp.name,
                        theta_und=float(res.theta[m, 0]),
                        theta_gen=float(res.theta[m, 1]),
                        gap=gap,
                        se=None if res.se_gap is None else float(res.se_gap[m]),
                        wald_low=None if res.se_gap is None else gap - z * float(res.se_gap[m]),
                        wald_high=None if res.se_gap is None else gap + z * float(res.se_gap[m]),
                        ci_low=None if lo is None else float(lo[m]),
                        ci_high=None if hi is None else float(hi[m]),
                        gap01=abs(gap) / (1 + abs(gap)),
                        n10=k10,
                        n01=k01,
                        p_nogap=float(p),
                        at_boundary=bool(boundary[m]),
                    )
                )
    for est, adj in zip(estimates, holm([e.p_nogap for e in estimates]), strict=True):
        est.p_adjusted = adj
    assert overall is not None
    expected = expected_responses(data, overall)
    resid = (data.y - expected) ** 2 / np.clip(expected * (1 - expected), 1e-9, None)
    with warnings.catch_warnings():  # an item nobody answered has no fit statistic: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        item_outfit = np.nanmean(resid, axis=(0, 2))
        model_outfit = np.nanmean(resid, axis=(1, 2))
    worst = np.argsort(-item_outfit)[:n_fit_items]
    corr = (
        float(np.corrcoef(overall.theta[:, 0], overall.theta[:, 1])[0, 1]) if len(data.models) > 2 else None
    )
    return GapAnalysis(
        estimates=estimates,
        fits=fits,
        ability_correlation=corr,
        item_fit=[(data.items[i], float(item_outfit[i])) for i in worst],
        model_fit=[(m, float(v)) for m, v in zip(data.models, model_outfit, strict=True)],
        n_boot=n_boot,
        ci=ci,
    )
