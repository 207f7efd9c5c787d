"""The typed result of scoring, which the CLI, ``report.md`` and the HTML report all render."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gapeval.scoring.gap_analysis import GapAnalysis
from gapeval.scoring.joint import RunScores
from gapeval.scoring.judge_error import Corrected
from gapeval.scoring.leaderboard import LeaderRow
from gapeval.scoring.mirt import Responses


@dataclass
class ScoreResult:
    """What :func:`score` computed; the CLI, ``report.md`` and the HTML report render it.

    Attributes:
        runs: Per run, accuracies and joint tables per category.
        leaderboard: Leaderboard rows (with the paper-compatible Gap when asked for).
        mirt: The identified gap, when computed.
        notes: Things the reader must know (different items, a direction with no verdicts...).
        platform: Whether this machine's paper-compatible Gap is bit-for-bit the authors'.
        responses: The response tensor the MIRT gap was fitted on.
        corrected: Per model, the scores corrected for the audited judge's error (with an audit).
        audit_judge: The judge the audit was of.

    """

    runs: list[RunScores]
    leaderboard: list[LeaderRow]
    mirt: GapAnalysis | None
    notes: list[str] = field(default_factory=list)
    platform: str | None = None
    responses: Responses | None = None
    corrected: list[Corrected] = field(default_factory=list)
    audit_judge: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {
            "runs": [r.model_dump() for r in self.runs],
            "leaderboard": [r.model_dump() for r in self.leaderboard],
            "mirt": self.mirt.model_dump() if self.mirt else None,
            "notes": self.notes,
            "platform": self.platform,
            "corrected": [c.model_dump() for c in self.corrected],
            "audit_judge": self.audit_judge,
        }
