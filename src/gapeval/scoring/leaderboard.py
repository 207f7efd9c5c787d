"""The default leaderboard: per model, per category and overall, Succ / Und / Gen / Gap (x100).

Gap is the paper-compatible Gap Score (``method="reference"``), shown with its fragility: the largest
change of the score over refits with 1e-6 noise on the input shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from gapeval.scoring.joint import GroupScore, RunScores
from gapeval.scoring.reference_gap import (
    ReferenceGap,
    fit_many,
    fragility,
    reference_gap_models_coupled,
)

Coupling = Literal["categories", "models"]


class LeaderRow(BaseModel):
    """One line of the leaderboard (percentages, x100).

    Attributes:
        model: Display name. run: Run directory. category: A category or ``Overall``.
        n_paired: Items decided both ways. und_n, gen_n: Items decided per direction.
        unsupported: Outputs the model lacks the capability for (both directions).
        failed: Outputs the model failed to produce (both directions).
        succ, und, gen: Both right / understanding / generation accuracy.
        gap, gap_fragility: The paper-compatible Gap Score and its largest change under 1e-6 noise.
        consistency: Share of paired items whose directions agree. joint: ``[p11, p10, p01, p00]``.
        judges: The judge ids, by precedence, each with its protocol.
        caveats: Why the Gap must not be read at face value: ``boundary`` (a direction was answered
            all right or all wrong, here or, for Overall, in a category: the fit's bounds set the
            Gap, not the data), ``fragile`` (its change under 1e-6 input noise exceeds its size).

    """

    model: str
    run: str
    category: str
    n_paired: int
    und_n: int = 0
    gen_n: int = 0
    unsupported: int = 0
    failed: int = 0
    succ: float | None
    und: float | None
    gen: float | None
    gap: float | None
    gap_fragility: float | None
    consistency: float | None
    joint: list[float]
    judges: str = ""
    caveats: list[str] = []


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


def caveats(g: GroupScore, gap: float | None, frag: float | None, *, inherited: bool = False) -> list[str]:
    """Why a Gap Score must not be read at face value (see :class:`LeaderRow`); none without a Gap."""
    if gap is None:
        return []
    p11, p10, p01, _ = g.joint.shares()  # the shares the fit sees: items decided both ways
    extreme = any(min(x, 1 - x) < 1e-9 for x in (p11 + p10, p11 + p01))
    out = ["boundary"] if extreme or inherited else []
    if frag is not None and frag > abs(gap):
        out.append("fragile")
    return out


def _row(
    run: RunScores, name: str, g: GroupScore, gap: float | None, frag: float | None, inherited: bool = False
) -> LeaderRow:
    return LeaderRow(
        model=run.model,
        run=run.run,
        category=name,
        n_paired=g.n_paired,
        und_n=g.und_n,
        gen_n=g.gen_n,
        unsupported=g.und_unsupported + g.gen_unsupported,
        failed=g.und_failed + g.gen_failed,
        succ=_pct(g.succ),
        und=_pct(g.und_acc),
        gen=_pct(g.gen_acc),
        gap=_pct(gap),
        gap_fragility=_pct(frag),
        consistency=_pct(g.consistency),
        joint=[round(x, 6) for x in g.joint.shares()],
        judges=", ".join(f"{j} ({run.protocols[j]})" if run.protocols.get(j) else j for j in run.judges),
        caveats=caveats(g, gap, frag, inherited=inherited),
    )


def leaderboard(
    runs: Sequence[RunScores],
    *,
    gap: bool = True,
    coupling: Coupling = "categories",
    fragility_n: int = 6,
    workers: int = 2,
) -> list[LeaderRow]:
    """Build leaderboard rows for scored runs.

    Args:
        runs: Scored runs (one model each).
        gap: Compute the paper-compatible Gap Score (needs torch).
        coupling: ``categories`` = the released scorer (one fit per model, its categories coupled);
            ``models`` = the appendix reading (one fit per category across the given models).
        fragility_n: Perturbed refits per model for the fragility figure (0 = skip).
        workers: Processes for the fits.

    """
    fitted: list[ReferenceGap | None] = [None] * len(runs)
    frags: list[list[float] | None] = [None] * len(runs)
    frag_mean: list[float | None] = [None] * len(runs)
    tables = [[g.joint.shares() for g in r.categories.values() if g.n_paired] for r in runs]
    if gap:
        idx = [i for i, t in enumerate(tables) if t]
        if coupling == "categories":
            for i, fit in zip(idx, fit_many([tables[i] for i in idx], workers=workers), strict=True):
                fitted[i] = fit
        elif idx:
            coupled = reference_gap_models_coupled({str(i): tables[i] for i in idx})
            for i in idx:
                fitted[i] = coupled[str(i)]
        if fragility_n > 0 and coupling == "categories":
            for i in idx:
                base = fitted[i]
                assert base is not None
                spread = fragility(tables[i], base, n=fragility_n, workers=workers)
                frags[i], frag_mean[i] = spread.max_abs_change, spread.mean_max_abs_change
    rows: list[LeaderRow] = []
    for i, run in enumerate(runs):
        res, k = fitted[i], 0
        for name, g in run.categories.items():
            cat_gap = cat_frag = None
            if g.n_paired and res is not None:
                cat_gap = res.gaps[k]
                fr = frags[i]
                cat_frag = fr[k] if fr is not None else None
                k += 1
            rows.append(_row(run, name, g, cat_gap, cat_frag))
        # The Overall Gap is the mean of the categories': one set by the bounds sets it too.
        inherited = any("boundary" in r.caveats for r in rows if r.run == run.run and r.model == run.model)
        rows.append(_row(run, "Overall", run.overall, res.gap_mean if res else None, frag_mean[i], inherited))
    return rows
