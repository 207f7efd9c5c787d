"""Scoring: joint tables, the paper-compatible Gap Score, and the leaderboard."""

from gapeval.scoring.joint import GroupScore, JointCounts, RunScores, score_run
from gapeval.scoring.leaderboard import LeaderRow, leaderboard
from gapeval.scoring.reference_gap import ReferenceGap, fragility, reference_gap

__all__ = [
    "GroupScore",
    "JointCounts",
    "LeaderRow",
    "ReferenceGap",
    "RunScores",
    "fragility",
    "leaderboard",
    "reference_gap",
    "score_run",
]
