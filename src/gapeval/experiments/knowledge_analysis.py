"""The analysis of a knowledge experiment.

Per arm, probe and direction: the change from the baseline with a two-stage bootstrap interval, a p-value
of no change, and the verdict on transfer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from gapeval.experiments.knowledge_spec import ARM_DIRECTIONS, PROBES
from gapeval.items import Direction


class Cell(BaseModel):
    """One arm's accuracy on one probe in one direction, against the baseline.

    Attributes:
        arm: ``baseline``, ``und``, ``gen`` or ``both`` (the direction(s) trained).
        probe: The item set (``target``/``efficacy``, ``generalisation``, ``locality``).
        direction: The evaluated direction.
        n: Items decided in this direction for this arm and the baseline.
        acc: Mean item score (over items, seeds and samples).
        delta: ``acc`` minus the baseline's on the same items.
        low, high: The 95% percentile interval of ``delta`` (two-stage bootstrap).
        p: Two-sided bootstrap p-value of ``delta == 0``.
        trained: Whether this arm trained this direction.
        verdict: For a direction the arm did not train, on the taught knowledge: ``transfer``,
            ``interference`` or ``none detected``; empty otherwise.

    """

    arm: str
    probe: str
    direction: str
    n: int
    acc: float | None
    delta: float | None = None
    low: float | None = None
    high: float | None = None
    p: float | None = None
    trained: bool = False
    verdict: str = ""


def arm_scores(per_seed: Sequence[dict[tuple[str, Direction], float]]) -> dict[tuple[str, Direction], float]:
    """Item scores averaged over an arm's seeds (items decided in every seed)."""
    keys = set.intersection(*(set(s) for s in per_seed))
    return {k: float(np.mean([s[k] for s in per_seed])) for k in keys}


def analyse(
    scores: dict[str, dict[tuple[str, Direction], float]],
    probes: dict[str, tuple[str, str]],
    experiment: str,
    n_boot: int,
    seed: int,
) -> list[Cell]:
    """Every (arm, probe, direction) cell, with bootstrap intervals for the change from the baseline.

    The bootstrap draws groups (entities) with replacement, then items within each drawn group; one
    set of resamples serves every arm and direction of a probe, so cells are comparable.
    """
    rng = np.random.default_rng(seed)
    base = scores["baseline"]
    cells: list[Cell] = []
    for probe in PROBES[experiment]:
        ids = sorted(i for i, (p, _) in probes.items() if p == probe)
        if not ids:
            continue
        groups: dict[str, list[int]] = {}
        for k, i in enumerate(ids):
            groups.setdefault(probes[i][1], []).append(k)
        members = list(groups.values())
        draws = []
        for _ in range(n_boot):
            picked = rng.integers(len(members), size=len(members))
            draws.append(np.concatenate([np.asarray(members[g])[rng.integers(len(members[g]),
                                         size=len(members[g]))] for g in picked]))  # fmt: skip
        for direction in (Direction.UND, Direction.GEN):
            b = np.array([base.get((i, direction), np.nan) for i in ids])
            for arm, sc in scores.items():
                a = np.array([sc.get((i, direction), np.nan) for i in ids])
                both = ~np.isnan(a) & ~np.isnan(b)
                trained = arm != "baseline" and direction.value in ARM_DIRECTIONS[arm]
                cell = Cell(arm=arm, probe=probe, direction=direction.value, n=int(both.sum()),
                            acc=float(a[both].mean()) if both.any() else None, trained=trained)  # fmt: skip
                if arm != "baseline" and both.any():
                    d = np.where(both, a - b, np.nan)
                    cell.delta = float(np.nanmean(d))
                    if n_boot:
                        boots = np.array([np.nanmean(d[idx]) if both[idx].any() else np.nan for idx in draws])
                        boots = boots[~np.isnan(boots)]
                        cell.low, cell.high = (float(x) for x in np.percentile(boots, [2.5, 97.5]))
                        cell.p = float(min(1.0, 2 * min(np.mean(boots <= 0), np.mean(boots >= 0))))
                    if probe == PROBES[experiment][0] and not trained and cell.low is not None:
                        cell.verdict = _verdict(cell.low, cell.high)
                cells.append(cell)
    return cells


def _verdict(low: float, high: float | None) -> str:
    if low > 0:
        return "transfer"
    return "interference" if high is not None and high < 0 else "none detected"
