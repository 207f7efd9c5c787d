"""Agreement of a judge with people, or among judges: accuracy, Cohen's kappa, confusion, Pearson r, alpha.

This is how a user decides whether a cheaper (local) judge can replace an API judge: label a sample of
outputs by hand, judge them with both, and compare. In the paper's terms: Pearson's r over the verdicts
of two judges (the paper reports r = 0.9656 between its two judges), Cohen's kappa per pair, and
Krippendorff's alpha (nominal) over any number of judges, per direction: agreement that holds overall can
hide a direction in which the judges part. Agreement is not truth: two judges sharing a bias agree on
it; ``gapeval audit`` measures each judge against the truth instead.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from gapeval.errors import GapevalError
from gapeval.files import read_table
from gapeval.items import Direction
from gapeval.records import VerdictStatus
from gapeval.scoring.judge_error import cohen_kappa
from gapeval.store import RunStore

Key = tuple[str, str]
_TRUE = {"1", "pass", "true", "yes", "correct"}
_FALSE = {"0", "fail", "false", "no", "incorrect"}


class CategoryAgreement(BaseModel):
    """Agreement within one category."""

    category: str
    n: int
    accuracy: float
    kappa: float | None


class Agreement(BaseModel):
    """Agreement over the outputs both sides decided."""

    n: int
    accuracy: float
    kappa: float
    pearson: float
    confusion: list[list[int]]
    per_category: list[CategoryAgreement]


def judge_labels(store: RunStore, judge_id: str) -> dict[Key, float]:
    """A judge's per (item, direction) score in the run: the mean over decided samples."""
    scores: dict[Key, list[float]] = defaultdict(list)
    for v in store.verdicts(judge_id):
        if v.status is VerdictStatus.OK and v.score is not None:
            scores[(v.item_id, str(v.direction))].append(v.score)
    if not scores:
        raise GapevalError(
            f"no decided verdicts of judge {judge_id!r} in this run", file=store.path, field="judge"
        )
    return {k: float(np.mean(v)) for k, v in scores.items()}


def judge_sample_raters(store: RunStore, judge_id: str) -> dict[str, dict[Key, float]]:
    """A judge's independent samples as raters (``JUDGE#1``...): how far it agrees with itself.

    The units are outputs (``ITEM/SAMPLE`` per direction): each of the ``k`` judge calls on one output
    is one rater's verdict on it. Only a judge that stored several samples per output (``--samples k``)
    has them.

    Raises:
        GapevalError: The judge stored one sample per output.

    """
    raters: dict[str, dict[Key, float]] = defaultdict(dict)
    for v in store.verdicts(judge_id):
        calls = (v.meta or {}).get("samples")
        if v.status is not VerdictStatus.OK or not isinstance(calls, list) or len(calls) < 2:
            continue
        for i, call in enumerate(calls):
            raters[f"{judge_id}#{i + 1}"][(f"{v.item_id}/{v.sample}", str(v.direction))] = float(call)
    if not raters:
        raise GapevalError(
            f"judge {judge_id!r} stored one verdict per output; judge with --samples k (k >= 2) to compare "
            "its samples",
            file=store.path,
            field="--samples",
        )
    return dict(raters)


def read_labels(path: str | Path) -> dict[Key, float]:
    """Human labels: CSV with columns item_id, direction (und/gen), label (1/0, pass/fail, yes/no...)."""
    out: dict[Key, float] = {}
    _, rows = read_table(path, ("item_id", "direction", "label"))
    labels = {**dict.fromkeys(_TRUE, 1.0), **dict.fromkeys(_FALSE, 0.0)}
    for row in rows:
        key = (row.text("item_id"), row.choice("direction", {d.value: d.value for d in Direction}))
        if key in out:
            raise GapevalError(
                f"item {key[0]!r} ({key[1]}) is labelled twice", file=row.where, field="item_id"
            )
        out[key] = row.choice("label", labels)
    return out


#: An output people labelled: (item id, direction, sample).
OutputKey = tuple[str, str, int]


def read_output_labels(path: str | Path, model: str | None = None) -> dict[OutputKey, tuple[bool, str]]:
    """People's labels of single outputs: CSV with item_id, direction (und/gen), sample, label.

    An optional ``model`` column (the report's labelling export writes it) says whose outputs a row
    labels; with ``model`` given, rows of other models are left out.

    Returns:
        Per (item id, direction, sample): whether the output is right, and the ``FILE:LINE`` it came from.

    Raises:
        GapevalError: A malformed file, value or repeated output, or no row of ``model``, in one line
            naming file, line and column.

    """
    out: dict[OutputKey, tuple[bool, str]] = {}
    header, rows = read_table(path, ("item_id", "direction", "sample", "label"))
    labels = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}
    if model is not None and "model" in header:
        theirs = sorted({row.text("model") for row in rows})
        rows = [row for row in rows if row.text("model") == model]
        if not rows:
            named = ", ".join(map(repr, theirs))
            raise GapevalError(f"no label is of model {model!r} (the file labels {named})", file=path,
                               field="model")  # fmt: skip
    for row in rows:
        sample = row.number("sample", low=0, high=10_000)
        if sample is None or sample != int(sample):
            raise GapevalError(f"not a sample number: {row.text('sample')!r}", file=row.where, field="sample")
        key = (
            row.text("item_id"),
            row.choice("direction", {d.value: d.value for d in Direction}),
            int(sample),
        )
        if key in out:
            raise GapevalError(f"output {key[0]!r} ({key[1]}, sample {key[2]}) is labelled twice",
                               file=row.where, field="item_id")  # fmt: skip
        out[key] = (row.choice("label", labels), row.where)
    return out


def _kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's kappa of two pass/fail verdict arrays (the audit's counts-based one)."""
    return cohen_kappa(int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b)), int(np.sum(~a & ~b)))


def agreement(ours: dict[Key, float], theirs: dict[Key, float], categories: dict[str, str]) -> Agreement:
    """Compare two sets of verdicts on the outputs both decided (scores >= 0.5 count as pass)."""
    keys = sorted(set(ours) & set(theirs))
    if not keys:
        raise GapevalError("the two sides share no judged outputs", field="labels")
    a = np.array([ours[k] for k in keys])
    b = np.array([theirs[k] for k in keys])
    pa, pb = a >= 0.5, b >= 0.5
    conf = [[int(np.sum(pa & pb)), int(np.sum(pa & ~pb))], [int(np.sum(~pa & pb)), int(np.sum(~pa & ~pb))]]
    pearson = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    per = []
    for cat in sorted({categories.get(k[0], "") for k in keys}):
        idx = np.array([categories.get(k[0], "") == cat for k in keys])
        per.append(
            CategoryAgreement(
                category=cat or "(unknown)",
                n=int(idx.sum()),
                accuracy=float(np.mean(pa[idx] == pb[idx])),
                kappa=_kappa(pa[idx], pb[idx]),
            )
        )
    kappa = _kappa(pa, pb)
    return Agreement(
        n=len(keys),
        accuracy=float(np.mean(pa == pb)),
        kappa=kappa if kappa is not None else 1.0,
        pearson=pearson,
        confusion=conf,
        per_category=per,
    )


def krippendorff_alpha(ratings: np.ndarray) -> float | None:
    """Krippendorff's alpha for nominal data: raters x units, a category code or NaN (not rated).

    Units rated by fewer than two raters carry no information and are left out. None when fewer than two
    pairable values remain or every value is the same (no disagreement is possible).
    """
    values = np.asarray(ratings, dtype=float)
    codes = np.unique(values[~np.isnan(values)])
    index = {c: k for k, c in enumerate(codes)}
    coincidence = np.zeros((len(codes), len(codes)))
    for unit in values.T:
        seen = unit[~np.isnan(unit)]
        if len(seen) < 2:
            continue
        counts = np.zeros(len(codes))
        for v in seen:
            counts[index[v]] += 1
        coincidence += (np.outer(counts, counts) - np.diag(counts)) / (len(seen) - 1)
    n = coincidence.sum()
    if n <= 1 or len(codes) < 2:
        return None
    marginals = coincidence.sum(axis=0)
    observed = n - np.trace(coincidence)
    expected = (n * n - (marginals**2).sum()) / (n - 1)
    return None if expected == 0 else float(1 - observed / expected)


class PairAgreement(BaseModel):
    """Two raters on the outputs both decided, in one direction (or ``all``).

    Attributes:
        first, second: The raters (judge ids, or a labels file).
        direction: ``all``, ``und`` or ``gen``.
        n: Items both decided.
        accuracy: Share of equal pass/fail verdicts.
        kappa: Cohen's kappa (None when undefined).
        pearson: Pearson's r over the verdicts' scores (None when either side is constant).

    """

    first: str
    second: str
    direction: str
    n: int
    accuracy: float | None
    kappa: float | None
    pearson: float | None


class Reliability(BaseModel):
    """Agreement among several raters, pair by pair and all together.

    Attributes:
        raters: The raters.
        pairs: Every pair, in every direction.
        alpha: Krippendorff's alpha (nominal, pass/fail) over all raters: ``all``, ``und``, ``gen``.
        units: Items rated by two raters or more, per direction key.

    """

    raters: list[str]
    pairs: list[PairAgreement]
    alpha: dict[str, float | None]
    units: dict[str, int]


def _pair(a: str, b: str, direction: str, x: np.ndarray, y: np.ndarray) -> PairAgreement:
    pa, pb = x >= 0.5, y >= 0.5
    varied = len(x) > 1 and x.std() > 0 and y.std() > 0
    return PairAgreement(first=a, second=b, direction=direction, n=len(x),
                         accuracy=float(np.mean(pa == pb)) if len(x) else None,
                         kappa=_kappa(pa, pb) if len(x) else None,
                         pearson=float(np.corrcoef(x, y)[0, 1]) if varied else None)  # fmt: skip


def reliability(scores: dict[str, dict[Key, float]]) -> Reliability:
    """Pairwise agreement and Krippendorff's alpha of raters' scores per (item, direction)."""
    raters = list(scores)
    pairs: list[PairAgreement] = []
    alpha: dict[str, float | None] = {}
    units: dict[str, int] = {}
    for direction in ("all", "und", "gen"):
        keep = {r: {k: v for k, v in scores[r].items() if direction in ("all", k[1])} for r in raters}
        for i, a in enumerate(raters):
            for b in raters[i + 1 :]:
                shared = sorted(set(keep[a]) & set(keep[b]))
                x, y = (np.array([keep[r][k] for k in shared]) for r in (a, b))
                pairs.append(_pair(a, b, direction, x, y))
        keys = sorted(set().union(*(keep[r] for r in raters)))
        table = np.array(
            [[float(keep[r][k] >= 0.5) if k in keep[r] else np.nan for k in keys] for r in raters]
        )
        rated = int(np.sum(np.sum(~np.isnan(table), axis=0) >= 2)) if keys else 0
        alpha[direction] = krippendorff_alpha(table) if rated else None
        units[direction] = rated
    return Reliability(raters=raters, pairs=pairs, alpha=alpha, units=units)
