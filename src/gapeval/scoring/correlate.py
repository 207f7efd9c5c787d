"""Relate gaps to external benchmark scores: Spearman and Kendall with bootstrap intervals over models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel
from scipy.stats import kendalltau, spearmanr

from gapeval.errors import GapevalError
from gapeval.files import read_table


class Correlation(BaseModel):
    """Rank correlation of the gap with one external score."""

    score: str
    n_models: int
    spearman: float
    spearman_ci: tuple[float, float]
    spearman_p: float
    kendall: float
    kendall_ci: tuple[float, float]
    kendall_p: float


def read_scores(path: str | Path) -> tuple[list[str], dict[str, dict[str, float]]]:
    """CSV with a ``model`` column and one numeric column per score (``gap`` may be one of them)."""
    header, rows = read_table(path, ("model",))
    columns = [c for c in header if c != "model"]
    if not columns:
        raise GapevalError("has no score column beside 'model'", file=path, field="model")
    table: dict[str, dict[str, float]] = {}
    for row in rows:
        model = row.text("model")
        if model in table:
            raise GapevalError(f"model {model!r} appears twice", file=row.where, field="model")
        table[model] = {c: v for c in columns if (v := row.number(c, required=False)) is not None}
    return columns, table


def correlate(
    gaps: dict[str, float],
    scores: dict[str, dict[str, float]],
    columns: list[str],
    *,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    source: str | Path | None = None,
) -> list[Correlation]:
    """Spearman and Kendall of the gaps with each score column, bootstrap percentile CIs over models.

    Args:
        gaps: Model -> gap.
        scores: Model -> score column -> value (:func:`read_scores`).
        columns: The score columns to correlate (``gap`` is skipped).
        n_boot: Bootstrap resamples over models.
        ci: Interval level.
        seed: Bootstrap seed.
        source: The scores file, named in errors.

    Raises:
        GapevalError: Fewer than 3 models with both values, or a constant column, naming the file.

    """
    out = []
    rng = np.random.default_rng(seed)
    for col in columns:
        if col == "gap":
            continue
        models = [m for m in gaps if col in scores.get(m, {})]
        if len(models) < 3:
            raise GapevalError(
                f"needs at least 3 models with both a gap and a score, found {len(models)}",
                file=source,
                field=col,
            )
        g = np.array([gaps[m] for m in models])
        s = np.array([scores[m][col] for m in models])
        if not (np.all(np.isfinite(g)) and np.all(np.isfinite(s))):
            raise GapevalError("a gap or a score is not a finite number", file=source, field=col)
        for name, values in (("gap", g), (col, s)):
            if len(set(values.tolist())) < 2:
                raise GapevalError(
                    f"{name} is the same for every model: a rank correlation is undefined",
                    file=source,
                    field=name,
                )
        sp, kd = spearmanr(g, s), kendalltau(g, s)
        boots_s, boots_k = [], []
        for _ in range(n_boot):
            idx = rng.integers(len(models), size=len(models))
            if len(set(g[idx])) < 2 or len(set(s[idx])) < 2:
                continue
            boots_s.append(spearmanr(g[idx], s[idx]).statistic)
            boots_k.append(kendalltau(g[idx], s[idx]).statistic)
        a = (1 - ci) / 2
        if not boots_s:
            raise GapevalError(
                "no bootstrap resample had two distinct values; too few models", file=source, field=col
            )
        out.append(
            Correlation(
                score=col,
                n_models=len(models),
                spearman=float(sp.statistic),
                spearman_p=float(sp.pvalue),
                spearman_ci=(float(np.nanquantile(boots_s, a)), float(np.nanquantile(boots_s, 1 - a))),
                kendall=float(kd.statistic),
                kendall_p=float(kd.pvalue),
                kendall_ci=(float(np.nanquantile(boots_k, a)), float(np.nanquantile(boots_k, 1 - a))),
            )
        )
    return out
