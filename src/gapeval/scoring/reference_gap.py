"""The paper-compatible Gap Score (the GapEval authors' released scorer), reproduced bit for bit.

Per model, K joint rows ``[p11, p10, p01, p00]`` (one per category) go into a MAP fit of a 2-D
ability model with a shared Gaussian prior over the rows; the fitted ability difference per row is
mapped to (0, 1) and shifted by the both-right / both-wrong shares. See
``shared/reference/gap-score-spec.md`` for the statement this module follows.

The objective has an almost flat ridge, so the numbers are decided by float32 rounding along the
optimiser's path: the operation sequence below is kept exactly (the order of the loss terms, float32
throughout, one CPU thread). :func:`fragility` measures how much a score moves under 1e-6 input noise so
that the number is never shown without it. This is NOT an identified estimator; see ``scoring.mirt``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from gapeval.errors import GapevalError
from gapeval.files import read_json

LAMBDA_FAIL = 2.7
LAMBDA_SUCC = 1.05
Row = Sequence[float]


class ReferenceGap(BaseModel):
    """Result of one reference fit: per-row gaps and their mean, rounded to 6 decimals as published."""

    gaps: list[float]
    gap_mean: float


class Fragility(BaseModel):
    """Spread of the reference score under tiny input perturbations.

    Attributes:
        eps: Standard deviation of the Gaussian noise added to the input shares.
        n: Number of perturbed refits.
        max_abs_change: Per row, the largest change of the gap over the refits.
        mean_max_abs_change: The same for ``gap_mean``.

    """

    eps: float
    n: int
    max_abs_change: list[float]
    mean_max_abs_change: float


def validate_rows(rows: Any, where: str = "rows") -> list[list[float]]:
    """Check rows as the reference does: 4 non-negative numbers summing to 1 within 5e-3.

    Raises:
        GapevalError: naming the row at fault.

    """
    if not isinstance(rows, list) or not rows:
        raise GapevalError("must be a non-empty list of [p11, p10, p01, p00] rows", field=where)
    out: list[list[float]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            raise GapevalError("must be 4 numbers [p11, p10, p01, p00]", field=f"{where}[{i}]")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in row):
            # the reference takes numbers only: not booleans, not numeric strings
            raise GapevalError("must be 4 numbers [p11, p10, p01, p00]", field=f"{where}[{i}]")
        values = [float(x) for x in row]
        if any(x < 0 or not math.isfinite(x) for x in values):
            raise GapevalError(f"has a negative or non-finite entry {values}", field=f"{where}[{i}]")
        total = sum(values)
        if abs(total - 1.0) > 5e-3:
            raise GapevalError(f"sums to {total:.6f}, not 1", field=f"{where}[{i}]")
        out.append(values)
    return out


def require_torch() -> Any:
    """torch, or one clear line naming the extra that brings it."""
    try:
        import torch
    except ImportError as exc:
        raise GapevalError(
            "the paper-compatible Gap Score needs torch: pip install 'gapeval[torch]'"
        ) from exc
    return torch


def _margins(rows: Sequence[Row]) -> tuple[list[list[float]], list[float], list[float]]:
    """Per row: the four margins the fit reads (und fail/succ, gen succ/fail), p11 and p00.

    Shares are computed in double precision, before any float32 tensor: computing them in float32 moves
    the published numbers by up to 0.12.
    """
    table, co_success, co_fail = [], [], []
    for values in validate_rows([list(r) for r in rows]):
        total = sum(values)
        p11, p10, p01, p00 = (x / total for x in values)
        table.append([p01 + p00, p11 + p10, p11 + p01, p10 + p00])
        co_success.append(p11)
        co_fail.append(p00)
    return table, co_success, co_fail


def reference_gap(
    rows: Sequence[Row], *, total_count: float = 1000.0, steps: int = 2000, lr: float = 0.05
) -> ReferenceGap:
    """Fit one model's rows exactly as the authors' scorer does.

    Args:
        rows: One ``[p11, p10, p01, p00]`` row per category.
        total_count: Pseudo-count ``T`` the shares are scaled to (the reference uses 1000 whatever the
            real number of items).
        steps: AdamW steps.
        lr: AdamW learning rate.

    """
    torch = require_torch()
    import torch.nn.functional as F

    table, co_success, co_fail = _margins(rows)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        f32 = torch.float32
        props = torch.tensor(table, dtype=f32)
        counts = props * total_count
        und_fail, und_succ, gen_succ, gen_fail = counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3]
        eps = 1e-8
        p_und0 = torch.clamp(und_succ / (und_fail + und_succ + eps), 1e-5, 1.0 - 1e-5)
        p_gen0 = torch.clamp(gen_succ / (gen_fail + gen_succ + eps), 1e-5, 1.0 - 1e-5)
        theta0 = torch.stack([torch.logit(p_und0), torch.logit(p_gen0)], dim=1)
        theta = torch.nn.Parameter(theta0.clone())
        beta = torch.nn.Parameter(torch.zeros(2))
        mu = torch.nn.Parameter(theta0.mean(dim=0))
        l_raw = torch.nn.Parameter(torch.tensor([[0.1, 0.0], [0.05, 0.1]], dtype=f32))
        opt = torch.optim.AdamW([theta, beta, mu, l_raw], lr=lr, weight_decay=1e-4)
        diag = torch.arange(2)
        n_rows = props.shape[0]
        best_loss, best_theta = float("inf"), None
        for _ in range(steps):
            opt.zero_grad()
            lower = torch.tril(l_raw).clone()
            lower[diag, diag] = F.softplus(lower[diag, diag]) + 1e-4
            sigma_inv = torch.linalg.inv(lower @ lower.T)
            p_und = torch.sigmoid(theta[:, 0] - beta[0])
            p_gen = torch.sigmoid(theta[:, 1] - beta[1])
            nll = -(
                und_succ * torch.log(p_und + eps)
                + und_fail * torch.log(1.0 - p_und + eps)
                + gen_succ * torch.log(p_gen + eps)
                + gen_fail * torch.log(1.0 - p_gen + eps)
            ).sum()
            diff = theta - mu
            mahal = 0.5 * torch.einsum("ni,ij,nj->n", diff, sigma_inv, diff).sum()
            logdet = n_rows * torch.log(torch.diagonal(lower)).sum()
            anchor = 1e-3 * (beta.pow(2).sum() + mu.pow(2).sum())
            loss = nll + mahal + logdet + anchor  # this summation order is part of the reference
            loss.backward()
            opt.step()
            # The reference keeps theta AFTER the step whose pre-step loss was lowest (off by one).
            value = float(loss.detach())
            if value < best_loss:
                best_loss, best_theta = value, theta.detach().clone()
        assert best_theta is not None
        delta = best_theta[:, 0] - best_theta[:, 1]
        gap_abs = torch.clamp(delta.abs() / (1.0 + delta.abs()), 1e-6, 1.0 - 1e-6)
        adjusted = torch.sigmoid(
            torch.logit(gap_abs)
            + LAMBDA_FAIL * torch.tensor(co_fail, dtype=f32)
            - LAMBDA_SUCC * torch.tensor(co_success, dtype=f32)
        )
        gaps = [round(float(x), 6) for x in adjusted]
    finally:
        torch.set_num_threads(threads)
    return ReferenceGap(gaps=gaps, gap_mean=round(sum(gaps) / len(gaps), 6))


def fit_batch(
    tables: Sequence[Sequence[Row]], *, total_count: float = 1000.0, steps: int = 2000, lr: float = 0.05
) -> list[ReferenceGap]:
    """Fit several tables of the same number of rows as one batched problem (one optimiser pass).

    Each table keeps its own parameters and its own loss, and AdamW updates elementwise, so every fit
    follows the reference's recipe; only the floating-point path may differ from :func:`reference_gap`
    (on the machine where this was written the two agree to the last printed digit, but nothing promises
    it). For the fragility refits, whose point is to measure how far a 1e-6 perturbation moves the score,
    that is enough, at the cost of about one fit instead of n.
    """
    if not tables:
        return []
    torch = require_torch()
    import torch.nn.functional as F

    margins = [_margins(rows) for rows in tables]
    if len({len(m[0]) for m in margins}) != 1:
        raise ValueError("batched tables must have the same number of rows")
    table, co_success, co_fail = ([m[k] for m in margins] for k in range(3))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        f32 = torch.float32
        counts = torch.tensor(table, dtype=f32) * total_count  # (B, n, 4)
        und_fail, und_succ, gen_succ, gen_fail = (counts[..., k] for k in range(4))
        eps = 1e-8
        p_und0 = torch.clamp(und_succ / (und_fail + und_succ + eps), 1e-5, 1.0 - 1e-5)
        p_gen0 = torch.clamp(gen_succ / (gen_fail + gen_succ + eps), 1e-5, 1.0 - 1e-5)
        theta0 = torch.stack([torch.logit(p_und0), torch.logit(p_gen0)], dim=2)  # (B, n, 2)
        batch, n_rows = theta0.shape[0], theta0.shape[1]
        theta = torch.nn.Parameter(theta0.clone())
        beta = torch.nn.Parameter(torch.zeros(batch, 2))
        mu = torch.nn.Parameter(theta0.mean(dim=1))
        l_raw = torch.nn.Parameter(torch.tensor([[0.1, 0.0], [0.05, 0.1]], dtype=f32).repeat(batch, 1, 1))
        opt = torch.optim.AdamW([theta, beta, mu, l_raw], lr=lr, weight_decay=1e-4)
        diag = torch.arange(2)
        best_loss = torch.full((batch,), float("inf"))
        best_theta = theta0.clone()
        for _ in range(steps):
            opt.zero_grad()
            lower = torch.tril(l_raw).clone()
            lower[:, diag, diag] = F.softplus(lower[:, diag, diag]) + 1e-4
            sigma_inv = torch.linalg.inv(lower @ lower.transpose(1, 2))
            p_und = torch.sigmoid(theta[..., 0] - beta[:, None, 0])
            p_gen = torch.sigmoid(theta[..., 1] - beta[:, None, 1])
            nll = -(
                und_succ * torch.log(p_und + eps)
                + und_fail * torch.log(1.0 - p_und + eps)
                + gen_succ * torch.log(p_gen + eps)
                + gen_fail * torch.log(1.0 - p_gen + eps)
            ).sum(dim=1)
            diff = theta - mu[:, None, :]
            mahal = 0.5 * torch.einsum("bni,bij,bnj->bn", diff, sigma_inv, diff).sum(dim=1)
            logdet = n_rows * torch.log(torch.diagonal(lower, dim1=1, dim2=2)).sum(dim=1)
            anchor = 1e-3 * (beta.pow(2).sum(dim=1) + mu.pow(2).sum(dim=1))
            loss = nll + mahal + logdet + anchor  # (B,): each table's own loss
            loss.sum().backward()
            opt.step()
            value = loss.detach()
            better = value < best_loss
            best_loss = torch.where(better, value, best_loss)
            best_theta = torch.where(better[:, None, None], theta.detach(), best_theta)
        delta = best_theta[..., 0] - best_theta[..., 1]
        gap_abs = torch.clamp(delta.abs() / (1.0 + delta.abs()), 1e-6, 1.0 - 1e-6)
        adjusted = torch.sigmoid(
            torch.logit(gap_abs)
            + LAMBDA_FAIL * torch.tensor(co_fail, dtype=f32)
            - LAMBDA_SUCC * torch.tensor(co_success, dtype=f32)
        )
    finally:
        torch.set_num_threads(threads)
    out = []
    for row in adjusted.tolist():
        gaps = [round(float(x), 6) for x in row]
        out.append(ReferenceGap(gaps=gaps, gap_mean=round(sum(gaps) / len(gaps), 6)))
    return out


def _fit_one(args: tuple[list[list[float]], float, int, float]) -> ReferenceGap:
    rows, total, steps, lr = args
    return reference_gap(rows, total_count=total, steps=steps, lr=lr)


def fit_many(
    tables: Sequence[Sequence[Row]],
    *,
    total_count: float = 1000.0,
    steps: int = 2000,
    lr: float = 0.05,
    workers: int = 1,
) -> list[ReferenceGap]:
    """Fit several independent row sets, in parallel processes when ``workers`` > 1.

    Fits stay per table (batching them into one tensor problem changes the numbers).
    """
    jobs = [([list(map(float, r)) for r in rows], total_count, steps, lr) for rows in tables]
    if workers <= 1 or len(jobs) <= 1:
        return [_fit_one(j) for j in jobs]
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_fit_one, jobs))


def perturb(rows: Sequence[Row], eps: float, rng: np.random.Generator) -> list[list[float]]:
    """Add N(0, eps) noise to each share (kept non-negative); rows are renormalised by the fit."""
    arr = np.asarray(rows, dtype=float)
    return np.clip(arr + rng.normal(0.0, eps, size=arr.shape), 0.0, None).tolist()  # type: ignore[no-any-return]


def fragility(
    rows: Sequence[Row],
    base: ReferenceGap,
    *,
    eps: float = 1e-6,
    n: int = 6,
    seed: int = 0,
    workers: int = 1,
    batched: bool = True,
    **fit_kwargs: Any,
) -> Fragility:
    """How far the score moves when the inputs move by ``eps`` (measured by ``n`` perturbed refits).

    The refits run as one batched fit (:func:`fit_batch`) unless ``batched`` is False.
    """
    rng = np.random.default_rng(seed)
    perturbed = [perturb(rows, eps, rng) for _ in range(n)]
    if batched:
        fits = fit_batch(perturbed, **fit_kwargs)
    else:
        fits = fit_many(perturbed, workers=workers, **fit_kwargs)
    per_row = [max((abs(f.gaps[k] - base.gaps[k]) for f in fits), default=0.0) for k in range(len(base.gaps))]
    mean = max((abs(f.gap_mean - base.gap_mean) for f in fits), default=0.0)
    return Fragility(
        eps=eps, n=n, max_abs_change=[round(x, 6) for x in per_row], mean_max_abs_change=round(mean, 6)
    )


def reference_gap_models_coupled(
    tables: Mapping[str, Sequence[Row]], **fit_kwargs: Any
) -> dict[str, ReferenceGap]:
    """The appendix reading: one fit per category ACROSS models (the prior couples the models).

    This is not what the released scorer does (it fits each model alone, coupling its categories);
    results differ and depend on which models are fitted together.
    """
    names = list(tables)
    if not names:
        raise GapevalError("no models to fit")
    n_cat = {len(tables[m]) for m in names}
    if len(n_cat) != 1:
        raise GapevalError("every model needs the same number of category rows for the models-coupled fit")
    k = n_cat.pop()
    per_cat = [reference_gap([tables[m][c] for m in names], **fit_kwargs) for c in range(k)]
    out = {}
    for i, m in enumerate(names):
        gaps = [per_cat[c].gaps[i] for c in range(k)]
        out[m] = ReferenceGap(gaps=gaps, gap_mean=round(sum(gaps) / len(gaps), 6))
    return out


def read_authors_input(path: str | Path) -> dict[str, list[list[float]]]:
    """Read the authors' input JSON: ``{model: [[p11, p10, p01, p00], ...]}``.

    Raises:
        GapevalError: naming the file and the model/row at fault.

    """
    file = Path(path)
    payload = read_json(file)
    if not isinstance(payload, dict) or not payload:
        raise GapevalError("must be a non-empty object mapping model names to row lists", file=file)
    out = {}
    for model, rows in payload.items():
        try:
            out[str(model)] = validate_rows(rows, where=str(model))
        except GapevalError as err:
            raise GapevalError(err.message, file=file, field=err.field) from None
    return out


def _is_gapres(path: Path) -> bool:
    """Whether ``path`` holds a result in the authors' output format (which gapeval may replace)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and set(data) == {"results"} and isinstance(data["results"], dict)


def write_authors_output(input_path: str | Path, results: Mapping[str, ReferenceGap]) -> Path:
    """Write the authors' output format next to the input: ``<stem>_gapres.json``."""
    src = Path(input_path)
    out = src.with_name(f"{src.stem}_gapres.json")
    if out.exists() and not _is_gapres(out):
        raise GapevalError("exists and is not a Gap Score result; refusing to write over it", file=out)
    payload = {"results": {m: r.model_dump() for m, r in results.items()}}
    out.write_text(json.dumps(payload, ensure_ascii=False, indent=2))
    return out
