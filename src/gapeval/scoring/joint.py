"""Joint outcomes: pair each item's two directions, per category and overall.

An item's score in a direction is the share of its judged samples that passed (0 or 1 with one sample
and one judge call; a share with several). Its joint outcome is then an expected count, taking its two
directions' samples as independent given the item: ``both = u * g``, ``und_only = u * (1 - g)``, ... .
Items lacking a decided verdict in a direction are missing (never wrong): they are left out of that
direction's accuracy and of the joint table, and counted as missing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, Field

from gapeval.items import Category, Direction
from gapeval.records import OutputRecord, OutputStatus, RunRecords, VerdictRecord, VerdictStatus


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
        und_unsupported, gen_unsupported: Outputs the model lacks the capability for, per direction.
        und_failed, gen_failed: Outputs the model failed to produce, per direction.

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
    und_unsupported: int = 0
    gen_unsupported: int = 0
    und_failed: int = 0
    gen_failed: int = 0


class RunScores(BaseModel):
    """Scores of one run.

    Attributes:
        run: The run directory.
        model: The display name (the run's label, else its model spec).
        spec: The model spec.
        suite: The suite's name.
        judges: The judge ids used, by precedence.
        protocols: Judge id -> its judging protocol.
        categories: Per category.
        overall: Over all items.
        unsupported_as_wrong: Whether unsupported outputs were counted as wrong.

    """

    run: str
    model: str
    spec: str = ""
    suite: str
    judges: list[str]
    protocols: dict[str, str] = Field(default_factory=dict)
    categories: dict[str, GroupScore]
    overall: GroupScore
    unsupported_as_wrong: bool = False


class VerdictIndex:
    """Which verdict decides an output.

    It is the first judge of the order with a decided verdict under the rubric hash in force for that
    item and direction. Verdicts of outputs that no longer exist, and verdicts under rubrics no longer
    in force, are never read.
    """

    def __init__(self, records: RunRecords) -> None:
        self.by_key = {(v.output_key, v.judge_id, v.rubric_hash): v for v in records.verdicts}
        self.in_force = records.in_force
        # Runs judged before rubric hashes were recorded per item: the judge's one recorded hash.
        self.legacy = {j.judge_id: j.rubric_hash for j in records.manifest.judges}

    def choose(self, output: OutputRecord, judge_order: Sequence[str]) -> VerdictRecord | None:
        """The verdict that decides ``output`` under ``judge_order`` (None: undecided)."""
        key = output.output_key
        if key is None:
            return None
        where = f"{output.item_id}\0{output.direction}"
        for judge in judge_order:
            table = self.in_force.get(judge)
            rubric_hash = table.get(where) if table is not None else self.legacy.get(judge)
            v = self.by_key.get((key, judge, rubric_hash)) if rubric_hash else None
            if v is not None and v.status is VerdictStatus.OK and v.score is not None:
                return v
        return None


def item_scores(
    records: RunRecords, judge_order: Sequence[str], *, unsupported_as_wrong: bool = False
) -> dict[tuple[str, Direction], float]:
    """Per (item, direction): the mean score over its decided samples.

    Each output is decided as :class:`VerdictIndex` says. With ``unsupported_as_wrong``, an output the model
    could not produce for lack of a capability counts as a wrong answer instead of a missing one.
    """
    index = VerdictIndex(records)
    per: dict[tuple[str, Direction], list[float]] = defaultdict(list)
    for out in records.outputs:
        if out.status is OutputStatus.UNSUPPORTED:
            if unsupported_as_wrong:
                per[(out.item_id, out.direction)].append(0.0)
            continue
        v = index.choose(out, judge_order)
        if v is not None and v.score is not None:
            per[(out.item_id, out.direction)].append(v.score)
    return {k: sum(v) / len(v) for k, v in per.items()}


def output_counts(records: RunRecords) -> dict[tuple[str, Direction], Counter[OutputStatus]]:
    """Per (item, direction): how many of its outputs stand in each status."""
    found: dict[tuple[str, Direction], Counter[OutputStatus]] = defaultdict(Counter)
    for out in records.outputs:
        found[(out.item_id, out.direction)][out.status] += 1
    return found


def group_score(
    item_ids: Sequence[str],
    scores: dict[tuple[str, Direction], float],
    statuses: dict[tuple[str, Direction], Counter[OutputStatus]] | None = None,
) -> GroupScore:
    """Accuracies and joint table over a group of items."""
    g = GroupScore(n_items=len(item_ids))
    members = set(item_ids)
    for (item, direction), c in (statuses or {}).items():
        if item not in members:
            continue
        if direction is Direction.UND:
            g.und_unsupported += c[OutputStatus.UNSUPPORTED]
            g.und_failed += c[OutputStatus.FAILED]
        else:
            g.gen_unsupported += c[OutputStatus.UNSUPPORTED]
            g.gen_failed += c[OutputStatus.FAILED]
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


def score_run(
    records: RunRecords, judges: Sequence[str] | None = None, *, unsupported_as_wrong: bool = False
) -> RunScores:
    """Score a run from its records (pure: nothing is read, re-run or re-judged).

    Args:
        records: The run's records (``RunStore.records()``).
        judges: Judge ids in order of precedence; default: the chain of the run's last judging.
        unsupported_as_wrong: Count outputs the model lacks the capability for as wrong.

    """
    manifest = records.manifest
    order = list(judges) if judges else list(manifest.judge_chain)
    scores = item_scores(records, order, unsupported_as_wrong=unsupported_as_wrong)
    statuses = output_counts(records)
    by_cat: dict[Category, list[str]] = defaultdict(list)
    for item_id, (cat, _) in sorted(records.items.items()):
        by_cat[cat].append(item_id)
    cats = {c.value: group_score(by_cat[c], scores, statuses) for c in Category if by_cat.get(c)}
    protocols = {j.judge_id: j.protocol for j in manifest.judges if j.judge_id in order}
    return RunScores(
        run=records.path,
        model=manifest.display_name,
        spec=manifest.spec.model,
        suite=manifest.spec.suite_name,
        judges=order,
        protocols=protocols,
        categories=cats,
        overall=group_score(sorted(records.items), scores, statuses),
        unsupported_as_wrong=unsupported_as_wrong,
    )
