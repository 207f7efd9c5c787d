"""The executor interface: plan the pending work, execute it anywhere, commit it in one place.

- :func:`plan` reads the store and the suite and lists the :class:`~gapeval.records.WorkUnit` s still to
  do (pending, and failed ones unless told otherwise). Planning never loads a model.
- An :class:`Executor` turns work units into :class:`WorkResult` s, building the model where it runs
  from its :class:`ModelSpec`; it yields each result as soon as it exists. The local executor runs in
  this process; a Ray executor or a model-server client implements the same protocol.
- The :class:`Committer` is the single writer: it streams each result into the run store as it arrives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from gapeval.items import Direction, Item
from gapeval.models.base import ModelContext
from gapeval.records import OutputRecord, OutputStatus, WorkUnit, failure_reason
from gapeval.store import RunStore


def request_seed(run_seed: int, item_id: str, direction: Direction, sample: int) -> int:
    """A per-request seed that depends only on what is asked, never on batching or order."""
    digest = hashlib.sha256(f"{run_seed}\0{item_id}\0{direction}\0{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class ModelSpec(BaseModel):
    """Everything needed to build the model where it runs.

    Attributes:
        spec: The model spec string (``toy``, ``replay:NAME``, ``py:FILE.py:Class``...).
        options: Adapter options (``--model-opt``), unredacted: they never reach disk from here.
        context: The suite context the adapter may use.
        batch_size: Requests per call; None lets the adapter choose (its ``batch_size``).

    """

    model_config = ConfigDict(frozen=True)

    spec: str
    options: dict[str, str] = Field(default_factory=dict)
    context: ModelContext = Field(default_factory=ModelContext)
    batch_size: int | None = None


@dataclass
class WorkResult:
    """What executing one work unit gave.

    Attributes:
        unit: The work unit.
        status: ``done``, ``failed`` or ``unsupported``.
        text: The answer (understanding).
        image_png: The generated image as PNG bytes (generation).
        error: Why there is no output.
        meta: Adapter metadata.
        wall_s: The model call's wall time divided over the requests it served.

    """

    unit: WorkUnit
    status: OutputStatus
    text: str | None = None
    image_png: bytes | None = None
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    wall_s: float | None = None


@runtime_checkable
class Executor(Protocol):
    """Turns work units into results; never writes the store."""

    name: str

    def execute(
        self, model: ModelSpec, units: Sequence[WorkUnit], images: Mapping[str, str]
    ) -> Iterator[WorkResult]:
        """Yield one result per unit, in any order, each as soon as it exists.

        Args:
            model: The model to build where the work runs.
            units: The pending work.
            images: Image SHA-256 -> a local path holding those bytes (the executor ships them to where
                the model runs, once each).

        """
        ...

    def model_description(self) -> dict[str, Any]:
        """The built model's ``describe()`` after :meth:`execute` (empty if it never had to build it)."""
        ...


@dataclass
class Plan:
    """The work a run still needs.

    Attributes:
        units: The work units still to do.
        already_done: Outputs already settled (done, unsupported, or failed when not retried).
        total: Outputs the run holds.
        totals: Outputs per direction (``und``, ``gen``).
        done: Outputs already settled per direction.

    """

    units: list[WorkUnit]
    already_done: int
    total: int
    totals: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)


def image_index(items: Sequence[Item]) -> dict[str, str]:
    """Image SHA-256 -> local path, over every image the items' tasks use."""
    found: dict[str, str] = {}
    for item in items:
        for ref in (*item.und.images, *((item.gen.input_image,) if item.gen.input_image else ())):
            found.setdefault(ref.sha256, ref.path)
    return found


def plan(store: RunStore, items: Sequence[Item], *, retry_failed: bool = True) -> Plan:
    """Record every (item, direction, sample) as pending if new, and list what is still to do."""
    spec = store.manifest().spec
    samples = {Direction.UND: spec.samples_und, Direction.GEN: spec.samples_gen}
    store.plan(
        (item.id, d, s, request_seed(spec.seed, item.id, d, s))
        for item in items
        for d in Direction
        for s in range(samples[d])
    )
    existing = {(o.item_id, o.direction, o.sample): o for o in store.outputs()}
    units: list[WorkUnit] = []
    done = {str(d): 0 for d in Direction}
    for item in items:
        for direction in Direction:
            for sample in range(samples[direction]):
                rec = existing[(item.id, direction, sample)]
                if not (
                    rec.status is OutputStatus.PENDING or (retry_failed and rec.status is OutputStatus.FAILED)
                ):
                    done[str(direction)] += 1
                    continue
                und = direction is Direction.UND
                edit = item.gen.input_image
                units.append(
                    WorkUnit(
                        item_id=item.id,
                        direction=direction,
                        sample=sample,
                        seed=rec.seed,
                        prompt=item.und.prompt if und else item.gen.prompt,
                        images=tuple(r.sha256 for r in item.und.images) if und else (),
                        input_image=edit.sha256 if edit is not None and not und else None,
                    )
                )
    totals = {str(d): len(items) * samples[d] for d in Direction}
    settled = sum(done.values())
    return Plan(units=units, already_done=settled, total=settled + len(units), totals=totals, done=done)


@dataclass
class CommitStats:
    """What a commit pass wrote."""

    done: int = 0
    failed: int = 0
    unsupported: int = 0
    skipped_done: int = 0
    requests: dict[str, int] = field(default_factory=lambda: {"und": 0, "gen": 0})
    #: The first distinct reasons outputs failed (at most five), so a user sees why before anything else.
    reasons: list[str] = field(default_factory=list)


class Committer:
    """The one writer of outputs: each result goes into the store, durably, as it arrives."""

    def __init__(self, store: RunStore, progress: Callable[[str, int], None] | None = None) -> None:
        self.store = store
        self.stats = CommitStats()
        self._progress = progress

    def commit(self, result: WorkResult) -> OutputRecord:
        """Write one result (an image is stored before the record that names it)."""
        unit = result.unit
        record = OutputRecord(
            item_id=unit.item_id,
            direction=unit.direction,
            sample=unit.sample,
            seed=unit.seed,
            status=result.status,
            text=result.text,
            error=result.error,
            meta=result.meta,
            wall_s=result.wall_s,
        )
        written = self.store.put_output(record, result.image_png)
        if result.status is OutputStatus.DONE:
            self.stats.done += 1
        elif result.status is OutputStatus.UNSUPPORTED:
            self.stats.unsupported += 1
        else:
            self.stats.failed += 1
            reason = failure_reason(result.error)
            if reason not in self.stats.reasons and len(self.stats.reasons) < 5:
                self.stats.reasons.append(reason)
        if result.status is not OutputStatus.UNSUPPORTED:
            self.stats.requests[str(unit.direction)] += 1
        if self._progress:
            self._progress(str(unit.direction), 1)
        return written
