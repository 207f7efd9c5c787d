"""Joint outcomes: pair each item's two directions, per category and overall.

An item's score in a direction is the share of its judged samples that passed (0 or 1 with one sample
and one judge call; a share with several). Its joint outcome is then an expected count, taking its two
directions' samples as independent given the item: ``both = u * g``, ``und_only = u * (1 - g)``, ... .
Items lacking a decided verdict in a direction are missing (never wrong): they are left out of that
direction's accuracy and of the joint table, and counted as missing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, Field

from gapeval.items import Category, Direction
from gapeval.store import RunStore, VerdictRecord, VerdictStatus


class JointCounts(BaseModel):
    """Expected counts of the four joint outcomes."""

    both: float = 0.0
    und_only: float = 0.0
    gen_only: float = 0.0
    neither: float = 0.0

    @property
    def n(self) -> float:
        """Number of paired items."""
        return self.both + self.und_only + self.gen_only + self.neither

    def shares(self) -> list[float]:
        """``[p11, p10, p01, p00]`` as the Gap Score takes them (zeros when empty)."""
        n = self.n
        return (
            [0.0] * 4 if n == 0 else [self.both / n, self.und_only / n, self.gen_only / n, self.neither / n]
        )


class GroupScore(BaseModel):
    """Scores of one category (or of all items).

    Attributes:
        n_items: Items in the group.
        n_paired: Items with a decided verdict in both directions.
        und_n, gen_n: Items with a decided verdict in that direction.
        und_acc, gen_acc: Mean item score per direction (None when nothing is decided).
        joint: Expected joint counts over paired items.
        succ: Share of paired items right both ways.
        consistency: Share of paired items where the two directions agree (both right or both wrong).
        missing: Item-directions without a decided verdict (failed outputs, judge failures, abstentions).

    """

    n_items: int = 0
    n_paired: int = 0
    und_n: int = 0
    gen_n: int = 0
    und_acc: float | None = None
    gen_acc: float | None = None
    joint: JointCounts = Field(default_factory=JointCounts)
    succ: float | None = None
    consistency: float | None = None
    missing: int = 0


class RunScores(BaseModel):
    """Scores of one run."""

    run: str
    model: str
    suite: str
    judges: list[str]
    categories: dict[str, GroupScore]
    overall: GroupScore


def item_scores(
    verdicts: Sequence[VerdictRecord], judge_order: Sequence[str]
) -> dict[tuple[str, Direction], float]:
    """Per (item, direction): the mean score over samples.

    Each sample is decided by the first judge in ``judge_order`` that decided it.
    """
    rank = {j: i for i, j in enumerate(judge_order)}
    chosen: dict[tuple[str, Direction, int], tuple[int, float]] = {}
    for v in verdicts:
        if v.status is not VerdictStatus.OK or v.judge_id not in rank or v.score is None:
            continue
        key = (v.item_id, v.direction, v.sample)
        if key not in chosen or rank[v.judge_id] < chosen[key][0]:
            chosen[key] = (rank[v.judge_id], v.score)
    per: dict[tuple[str, Direction], list[float]] = defaultdict(list)
    for (item, direction, _), (_, score) in chosen.items():
        per[(item, direction)].append(score)
    return {k: sum(v) / len(v) for k, v in per.items()}


def group_score(item_ids: Sequence[str], scores: dict[tuple[str, Direction], float]) -> GroupScore:
    """Accuracies and joint table over a group of items."""
    g = GroupScore(n_items=len(item_ids))
    und = [scores[(i, Direction.UND)] for i in item_ids if (i, Direction.UND) in scores]
    gen = [scores[(i, Direction.GEN)] for i in item_ids if (i, Direction.GEN) in scores]
    g.und_n, g.gen_n = len(und), len(gen)
    g.und_acc = sum(und) / len(und) if und else None
    g.gen_acc = sum(gen) / len(gen) if gen else None
    g.missing = 2 * len(item_ids) - len(und) - len(gen)
    joint = JointCounts()
    for i in item_ids:
        if (i, Direction.UND) in scores and (i, Direction.GEN) in scores:
            u, v = scores[(i, Direction.UND)], scores[(i, Direction.GEN)]
            joint.both += u * v
            joint.und_only += u * (1 - v)
            joint.gen_only += (1 - u) * v
            joint.neither += (1 - u) * (1 - v)
            g.n_paired += 1
    g.joint = joint
    if g.n_paired:
        g.succ = joint.both / joint.n
        g.consistency = (joint.both + joint.neither) / joint.n
    return g


def score_run(store: RunStore, judges: Sequence[str] | None = None) -> RunScores:
    """Score a run from its stored verdicts (pure: nothing is re-run or re-judged).

    Args:
        store: The run.
        judges: Judge ids in order of precedence; default: the run's judges in the order they were used.

    """
    manifest = store.manifest()
    order = list(judges) if judges else [j.judge_id for j in manifest.judges]
    scores = item_scores(store.verdicts(), order)
    items = store.items()
    by_cat: dict[Category, list[str]] = defaultdict(list)
    for item_id, (cat, _) in sorted(items.items()):
        by_cat[cat].append(item_id)
    cats = {c.value: group_score(by_cat[c], scores) for c in Category if by_cat.get(c)}
    return RunScores(
        run=str(store.path),
        model=manifest.spec.model,
        suite=manifest.spec.suite_name,
        judges=order,
        categories=cats,
        overall=group_score(sorted(items), scores),
    )
