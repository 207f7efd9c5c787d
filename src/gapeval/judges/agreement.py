"""Agreement of a judge with people, or with another judge: accuracy, Cohen's kappa, confusion, Pearson r.

This is how a user decides whether a cheaper (local) judge can replace an API judge: label a sample of
outputs by hand, judge them with both, and compare.
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


def _kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    po = float(np.mean(a == b))
    pe = float(np.mean(a) * np.mean(b) + np.mean(~a) * np.mean(~b))
    return None if pe >= 1.0 else (po - pe) / (1 - pe)


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
