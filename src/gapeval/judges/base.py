"""The judge protocol and the judging pipeline.

A judge decides one direction of one item from the stored output. It answers with a :class:`Decision`
whose status says whether it decided (``ok``), could not decide this time (``failed``: retried on the
next judging), or has no rule for this case (``abstain``: the next judge in the chain gets the output).

Verdict identity: a verdict is stored under (output key, judge id, rubric hash). The judge id covers the
judge's model, endpoint and every protocol setting that changes verdicts; the rubric hash is that of the
one rubric governing the output, so editing a rubric re-judges only what it governs. Each judging
records, per (item, direction), the rubric hash in force, and scoring reads exactly those verdicts.
Identical outputs (same item, direction and content) in one pass are judged once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from gapeval.errors import GapevalError
from gapeval.items import Direction, Item
from gapeval.openai_client import ApiUsage
from gapeval.records import JudgeSpec, OutputRecord, RunManifest, VerdictRecord, VerdictStatus
from gapeval.registry import JUDGES
from gapeval.store import RunStore
from gapeval.suites.base import Suite


@dataclass(frozen=True)
class JudgeTask:
    """One output to judge.

    Attributes:
        item: The item.
        output: The stored output.
        image_path: Where the output's image lies (generation), else None.
        companion: The model's own answer to the item (sample 0), for consistency checks.

    """

    item: Item
    output: OutputRecord
    image_path: Path | None
    companion: str | None = None

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


@dataclass(frozen=True)
class RubricRef:
    """The rubric governing one output: its id and the hash its verdict is cached under."""

    id: str
    hash: str
    fallback: bool = False


#: Request and token accounting of a judge that calls a model (zeros for exact judges).
JudgeUsage = ApiUsage


@dataclass(frozen=True)
class JudgeContext:
    """What a judge may use when it is built.

    Attributes:
        suite: The suite.
        manifest: The run's manifest.
        options: The judge's options.
        notify: Where to say what a slow or failing endpoint is doing (a retry and why), if anywhere.

    """

    suite: Suite
    manifest: RunManifest
    options: dict[str, str] = field(default_factory=dict)
    notify: Callable[[str], None] | None = None


@runtime_checkable
class Judge(Protocol):
    """Decides outputs; everything the judging pipeline calls.

    Attributes:
        judge_id: Identity of the judge and of every setting that changes its verdicts.
        spec: The spec it was built from.
        protocol: The judging protocol's name, shown in every leaderboard.

    """

    judge_id: str
    spec: str
    protocol: str

    @classmethod
    def from_spec(cls, arg: str, context: JudgeContext) -> Judge:
        """Build the judge from what follows the family name in its spec (``openai:MODEL`` -> MODEL)."""
        ...

    def rubric(self, task: JudgeTask) -> RubricRef:
        """The rubric governing ``task`` (raises GapevalError when none does: the output is abstained)."""
        ...

    def judge(self, tasks: Sequence[JudgeTask], emit: Callable[[int, Decision], None]) -> None:
        """Decide every task, calling ``emit(index, decision)`` once per task as each is decided."""
        ...

    def usage(self) -> JudgeUsage:
        """Requests and tokens spent so far."""
        ...


def text_hash(*parts: str) -> str:
    """Short stable hash of rubric text (or any strings)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


class ExactJudge:
    """Base of judges that decide in-process by rule: one fixed rubric, no usage, a batch at a time.

    A subclass names itself and its rule set's version and implements :meth:`judge_batch`; the rest
    follows: ``spec`` is its name, the rubric id is the version and the rubric hash that of the version,
    and ``from_spec`` builds it, refusing an argument (``rules:x`` is a typo, not a setting).
    """

    judge_id: str
    spec: str
    protocol = "exact"
    version: ClassVar[str] = ""
    rubric_id: str
    rubric_hash: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("version"):
            cls.rubric_id = cls.version
            cls.rubric_hash = text_hash(cls.version)
        if "judge_id" in cls.__dict__ and "spec" not in cls.__dict__:
            cls.spec = cls.judge_id

    @classmethod
    def from_spec(cls, arg: str, context: JudgeContext) -> Judge:
        """Build the judge; it takes no argument."""
        no_argument(cls.judge_id, arg)
        return cls()

    def rubric(self, task: JudgeTask) -> RubricRef:
        """The one rule set this judge applies."""
        return RubricRef(self.rubric_id, self.rubric_hash)

    def judge_batch(self, tasks: Sequence[JudgeTask]) -> list[Decision]:
        """Decide each task, in order."""
        raise NotImplementedError

    def judge(self, tasks: Sequence[JudgeTask], emit: Callable[[int, Decision], None]) -> None:
        """Decide in chunks of 64, emitting as each chunk is decided."""
        for start in range(0, len(tasks), 64):
            for k, dec in enumerate(self.judge_batch(tasks[start : start + 64])):
                emit(start + k, dec)

    def usage(self) -> JudgeUsage:
        """Exact judges make no requests."""
        return JudgeUsage()


def no_argument(family: str, arg: str) -> None:
    """Refuse an argument given to a judge that takes none (``rules:x`` is a typo, not a setting)."""
    if arg:
        raise GapevalError(f"judge {family!r} takes no argument (got {family}:{arg})", field="judge")


def load_judge(spec: str, *, suite: Suite, store: RunStore, options: dict[str, str] | None = None) -> Judge:
    """Build a judge from its spec (``rules``, ``recorded``, ``scene``, ``openai:MODEL``, a plugin).

    ``options`` go to judges that take them (the VLM judge: base_url, concurrency, protocol, ...).
    """
    family, _, arg = spec.partition(":")
    cls = JUDGES.load(family)
    judge: Judge = cls.from_spec(
        arg, JudgeContext(suite=suite, manifest=store.manifest(), options=options or {})
    )
    return judge


@dataclass
class JudgeStats:
    """What a judging pass did.

    Attributes:
        judged: Outputs decided now.
        cached: Outputs whose verdict was already stored.
        abstained: Outputs the judge has no rule for (handed to the next judge).
        failed: Outputs it could not decide this time (retried on the next judging).
        deduplicated: Identical outputs judged once.
        fallbacks: Outputs judged with a declared fallback rubric.
        usage: Requests, retries and tokens (zeros for judges that call no model).
        protocol: The judging protocol's name.

    """

    judged: int = 0
    cached: int = 0
    abstained: int = 0
    failed: int = 0
    deduplicated: int = 0
    fallbacks: int = 0
    usage: ApiUsage = field(default_factory=ApiUsage)
    protocol: str = ""


def _judge_pass(
    store: RunStore,
    judge: Judge,
    outputs: Sequence[OutputRecord],
    items: dict[str, Item],
    companions: dict[str, str],
    progress: Callable[[int], None] | None,
) -> tuple[JudgeStats, list[OutputRecord], JudgeSpec]:
    """One judge over the outputs handed to it; returns its stats, what it abstained on, and its spec."""
    st = JudgeStats(protocol=judge.protocol)
    undecided: list[OutputRecord] = []
    cache = store.verdict_statuses(judge.judge_id)
    in_force: dict[tuple[str, Direction], str] = {}
    rubrics: dict[str, str] = {}
    # (output key, rubric hash) -> the tasks sharing it: identical outputs are judged once.
    groups: dict[tuple[str, str], list[JudgeTask]] = {}
    refs: dict[tuple[str, str], RubricRef] = {}
    for out in outputs:
        key = out.output_key
        assert key is not None
        image = store.image_path(out.image_sha) if out.image_sha else None
        task = JudgeTask(items[out.item_id], out, image, companions.get(out.item_id))
        try:
            ref = judge.rubric(task)
        except GapevalError as exc:
            # No rubric governs it: recorded as an abstention with the reason, under a hash of the reason.
            ref = RubricRef("none", text_hash("no rubric", exc.message))
            store.put_verdict(_verdict(judge, task, key, ref, Decision.abstain(exc.message)))
            in_force[(out.item_id, out.direction)] = ref.hash
            st.abstained += 1
            undecided.append(out)
            continue
        in_force[(out.item_id, out.direction)] = ref.hash
        rubrics[ref.id] = ref.hash
        cached = cache.get((key, ref.hash))
        if cached is not None and cached is not VerdictStatus.FAILED:
            st.cached += 1
            if cached is VerdictStatus.ABSTAIN:
                undecided.append(out)
            elif progress:
                progress(1)
            continue
        group = groups.setdefault((key, ref.hash), [])
        if group:
            st.deduplicated += 1
        group.append(task)
        refs[(key, ref.hash)] = ref
    store.set_in_force(judge.judge_id, in_force)
    spec = JudgeSpec(
        judge_id=judge.judge_id,
        spec=judge.spec,
        protocol=judge.protocol,
        rubric_hash=text_hash(*(f"{k}={v}" for k, v in sorted(rubrics.items()))),
        rubrics=dict(sorted(rubrics.items())),
    )
    order = list(groups)
    firsts = [groups[k][0] for k in order]

    def record(i: int, dec: Decision) -> None:
        key, rubric_hash = order[i]
        ref = refs[(key, rubric_hash)]
        tasks = groups[(key, rubric_hash)]
        if ref.fallback and dec.status is VerdictStatus.OK:
            dec = Decision(
                dec.status,
                dec.passed,
                dec.reason,
                dec.raw,
                dec.score,
                {**(dec.meta or {}), "rubric_fallback": ref.id},
            )
            st.fallbacks += len(tasks)
        store.put_verdict(_verdict(judge, tasks[0], key, ref, dec))
        for task in tasks:
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

    if firsts:
        # Judges emit each decision as it arrives, and it is written at once: an interrupted judging
        # loses nothing.
        judge.judge(firsts, record)
    usage = st.usage = judge.usage()
    if usage.requests:
        store.log("judge_usage", {"judge": judge.judge_id, "cache_hits": st.cached, **vars(usage)})
    return st, undecided, spec


def _verdict(judge: Judge, task: JudgeTask, key: str, ref: RubricRef, dec: Decision) -> VerdictRecord:
    return VerdictRecord(
        output_key=key,
        judge_id=judge.judge_id,
        rubric_hash=ref.hash,
        item_id=task.item.id,
        direction=task.direction,
        sample=task.output.sample,
        status=dec.status,
        passed=dec.passed,
        score=dec.score,
        reason=dec.reason,
        raw=dec.raw,
        meta={"rubric": ref.id, **(dec.meta or {})},
    )


def judge_run(
    store: RunStore, suite: Suite, judges: Sequence[Judge], *, progress: Callable[[int], None] | None = None
) -> dict[str, JudgeStats]:
    """Judge every finished output with a chain of judges.

    Each output goes to the judges in order until one decides; a cached verdict of the same judge id and
    rubric hash is reused (a stored ``failed`` is retried). Verdicts are written one by one, so an
    interrupted judging resumes where it stopped. The chain is recorded in the manifest only once every
    judge has run.

    Returns:
        Per judge id, what it did.

    """
    items = suite.by_id()
    outputs = store.outputs()
    # The model's own answer, for checks that compare its image with its text (cross-modal consistency).
    companions = {
        o.item_id: o.text for o in outputs if o.direction is Direction.UND and o.sample == 0 and o.text
    }
    remaining = [o for o in outputs if o.output_key is not None and o.item_id in items]
    stats: dict[str, JudgeStats] = {}
    specs: list[JudgeSpec] = []
    for judge in judges:
        stats[judge.judge_id], remaining, spec = _judge_pass(
            store, judge, remaining, items, companions, progress
        )
        specs.append(spec)
    store.record_judging(specs)
    return stats
