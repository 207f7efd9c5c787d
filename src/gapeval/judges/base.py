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
    "scene": "gapeval.judges.scene:SceneJudge",
    "openai": "gapeval.judges.vlm:VLMJudge",
}
JUDGE_DESCRIPTIONS: dict[str, str] = {
    "rules": "exact rules: multiple-choice option, counting targets, normalised match; "
    "unchanged/copied images",
    "recorded": "the authors' own verdicts saved beside replayed outputs (new_res.json)",
    "scene": "exact judge of the built-in shapes world (answers by rule, images parsed into scenes)",
    "openai": "a VLM through any OpenAI-compatible API: openai:MODEL (default gpt-5-mini), --base-url URL",
}


def load_judge(spec: str, *, suite: Suite, store: RunStore, options: dict[str, str] | None = None) -> Judge:
    """Build a judge from its spec (``rules``, ``recorded``, ``scene``, ``openai:MODEL``).

    ``options`` go to judges that take them (the VLM judge: base_url, concurrency, samples, ...).
    """
    family, _, arg = spec.partition(":")
    target = JUDGE_FAMILIES.get(family)
    if target is None:
        raise GapevalError(f"unknown judge {spec!r}; known: {', '.join(JUDGE_FAMILIES)}", field="judge")
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise GapevalError(f"judge {family!r} needs an optional dependency: {exc}", field="judge") from exc
    judge: Judge = cls.from_spec(arg, suite=suite, store=store, options=options or {})
    return judge


@dataclass
class JudgeStats:
    """What a judging pass did (requests and tokens for judges that call a model)."""

    judged: int = 0
    cached: int = 0
    abstained: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0


def _judge_pass(
    store: RunStore,
    judge: Judge,
    outputs: Sequence[OutputRecord],
    items: dict[str, Item],
    companions: dict[str, str],
    progress: Callable[[int], None] | None,
) -> tuple[JudgeStats, list[OutputRecord]]:
    """One judge over the outputs handed to it; returns its stats and the outputs it abstained on."""
    st = JudgeStats()
    undecided: list[OutputRecord] = []
    todo: list[JudgeTask] = []
    # One query for the whole cache, not one per output.
    statuses = store.verdict_statuses(judge.judge_id, judge.rubric_hash)
    for out in outputs:
        key = out.output_key
        assert key is not None
        cached = statuses.get(key)
        if cached is not None and cached is not VerdictStatus.FAILED:
            st.cached += 1
            if cached is VerdictStatus.ABSTAIN:
                undecided.append(out)
            elif progress:
                progress(1)
            continue
        image = store.image_path(out.image_sha) if out.image_sha else None
        todo.append(JudgeTask(items[out.item_id], out, image))

    def record(task: JudgeTask, dec: Decision) -> None:
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

    stream = getattr(judge, "judge_stream", None)
    if stream is not None and todo:
        # Concurrent judges write each verdict as it arrives: an interrupted judging loses nothing.
        stream(todo, lambda i, dec: record(todo[i], dec), companions)
    else:
        for start in range(0, len(todo), 64):
            batch = todo[start : start + 64]
            for task, dec in zip(batch, judge.judge_batch(batch), strict=True):
                record(task, dec)
    usage = getattr(judge, "usage", None)
    if usage is not None:
        st.requests, st.retries = usage.requests, usage.retries
        st.tokens_in, st.tokens_out = usage.tokens_in, usage.tokens_out
        store.log("judge_usage", {"judge": judge.judge_id, "cache_hits": st.cached, **vars(usage)})
    return st, undecided


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
    for judge in judges:
        store.add_judge(JudgeSpec(judge_id=judge.judge_id, rubric_hash=judge.rubric_hash, spec=judge.spec))
    outputs = store.outputs()
    # The model's own answer, for checks that compare its image with its text (cross-modal consistency).
    companions = {
        o.item_id: o.text for o in outputs if o.direction is Direction.UND and o.sample == 0 and o.text
    }
    remaining = [o for o in outputs if o.output_key is not None and o.item_id in items]
    stats: dict[str, JudgeStats] = {}
    for judge in judges:
        stats[judge.judge_id], remaining = _judge_pass(store, judge, remaining, items, companions, progress)
    return stats
