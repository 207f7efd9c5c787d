"""The judge protocol, the judge registry and the judging pipeline.

A judge decides one direction of one item from the stored output. It answers with a
:class:`~gapeval.store.VerdictRecord` whose status says whether it decided (``ok``), could not decide
this time (``failed``: retried on the next judging), or has no rule for this case (``abstain``: the
next judge in the chain gets the output). Judging never re-runs the model, and a verdict already stored
for the same output, judge id and rubric hash is never asked for again.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gapeval.errors import GapevalError
from gapeval.items import Direction, Item
from gapeval.store import JudgeSpec, OutputRecord, RunStore, VerdictRecord, VerdictStatus
from gapeval.suites.base import Suite


@dataclass(frozen=True)
class JudgeTask:
    """One output to judge: the item, the stored output, and where its image lies (if any)."""

    item: Item
    output: OutputRecord
    image_path: Path | None

    @property
    def direction(self) -> Direction:
        """The output's direction."""
        return self.output.direction


@dataclass(frozen=True)
class Decision:
    """What a judge says about one output (the pipeline turns it into a stored verdict)."""

    status: VerdictStatus
    passed: bool | None = None
    reason: str = ""
    raw: str = ""
    score: float | None = None
    meta: dict[str, Any] | None = None

    @classmethod
    def decide(cls, passed: bool, reason: str, raw: str = "", **meta: Any) -> Decision:
        """A pass/fail decision."""
        return cls(VerdictStatus.OK, passed, reason, raw, float(passed), meta or None)

    @classmethod
    def abstain(cls, reason: str) -> Decision:
        """No rule for this case."""
        return cls(VerdictStatus.ABSTAIN, None, reason)

    @classmethod
    def fail(cls, reason: str, raw: str = "") -> Decision:
        """The judge could not decide (retryable); never a verdict on the model."""
        return cls(VerdictStatus.FAILED, None, reason, raw)


@runtime_checkable
class Judge(Protocol):
    """Decides outputs. ``judge_id`` pins the judge (e.g. model id); ``rubric_hash`` pins its rubric."""

    judge_id: str
    rubric_hash: str
    spec: str

    def judge_batch(self, tasks: Sequence[JudgeTask]) -> list[Decision]:
        """Decide each task; one decision per task, in order. May run them concurrently."""
        ...


def text_hash(*parts: str) -> str:
    """Short stable hash of rubric text (or any strings)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


#: judge family -> "module:Class"; imported lazily.
JUDGE_FAMILIES: dict[str, str] = {
    "rules": "gapeval.judges.rules:RulesJudge",
    "recorded": "gapeval.judges.recorded:RecordedJudge",
}
JUDGE_DESCRIPTIONS: dict[str, str] = {
    "rules": "exact rules: multiple-choice option, counting targets, normalised match; "
    "unchanged/copied images",
    "recorded": "the authors' own verdicts saved beside replayed outputs (new_res.json)",
}


def load_judge(spec: str, *, suite: Suite, store: RunStore) -> Judge:
    """Build a judge from its spec (``rules``, ``recorded``, ...)."""
    family, _, arg = spec.partition(":")
    target = JUDGE_FAMILIES.get(family)
    if target is None:
        raise GapevalError(f"unknown judge {spec!r}; known: {', '.join(JUDGE_FAMILIES)}", field="judge")
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise GapevalError(f"judge {family!r} needs an optional dependency: {exc}", field="judge") from exc
    judge: Judge = cls.from_spec(arg, suite=suite, store=store)
    return judge


@dataclass
class JudgeStats:
    """What a judging pass did."""

    judged: int = 0
    cached: int = 0
    abstained: int = 0
    failed: int = 0
    skipped_no_output: int = 0


def judge_run(
    store: RunStore, suite: Suite, judges: Sequence[Judge], *, progress: Callable[[int], None] | None = None
) -> dict[str, JudgeStats]:
    """Judge every finished output with a chain of judges.

    Each output goes to the judges in order until one decides; a cached verdict of the same judge id and
    rubric hash is reused (a stored ``failed`` is retried). Verdicts are written one by one, so an
    interrupted judging resumes where it stopped.

    Returns:
        Per judge id, what it did.

    """
    items = suite.by_id()
    stats = {j.judge_id: JudgeStats() for j in judges}
    for judge in judges:
        store.add_judge(JudgeSpec(judge_id=judge.judge_id, rubric_hash=judge.rubric_hash, spec=judge.spec))
    remaining: list[OutputRecord] = []
    for out in store.outputs():
        if out.output_key is None or out.item_id not in items:
            continue
        remaining.append(out)
    for judge in judges:
        todo: list[JudgeTask] = []
        undecided: list[OutputRecord] = []
        st = stats[judge.judge_id]
        for out in remaining:
            key = out.output_key
            assert key is not None
            cached = store.get_verdict(key, judge.judge_id, judge.rubric_hash)
            if cached is not None and cached.status is not VerdictStatus.FAILED:
                st.cached += 1
                if cached.status is VerdictStatus.ABSTAIN:
                    undecided.append(out)
                elif progress:
                    progress(1)
                continue
            image = store.image_path(out.image_sha) if out.image_sha else None
            todo.append(JudgeTask(items[out.item_id], out, image))
        chunk = 64
        for start in range(0, len(todo), chunk):
            batch = todo[start : start + chunk]
            decisions = judge.judge_batch(batch)
            for task, dec in zip(batch, decisions, strict=True):
                key = task.output.output_key
                assert key is not None
                store.put_verdict(
                    VerdictRecord(
                        output_key=key,
                        judge_id=judge.judge_id,
                        rubric_hash=judge.rubric_hash,
                        item_id=task.item.id,
                        direction=task.direction,
                        sample=task.output.sample,
                        status=dec.status,
                        passed=dec.passed,
                        score=dec.score,
                        reason=dec.reason,
                        raw=dec.raw,
                        meta=dec.meta or {},
                    )
                )
                if dec.status is VerdictStatus.OK:
                    st.judged += 1
                    if progress:
                        progress(1)
                elif dec.status is VerdictStatus.ABSTAIN:
                    st.abstained += 1
                    undecided.append(task.output)
                else:
                    # A failure is this judge's to retry later, not the next judge's to decide.
                    st.failed += 1
        remaining = undecided
    return stats
