"""The local executor: suite + model -> run store, resumable and durable per item."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gapeval.images import png_bytes
from gapeval.items import Direction, Item
from gapeval.models.base import GenerateRequest, ImageOutput, TextOutput, UnderstandRequest, UnifiedModel
from gapeval.store import OutputRecord, OutputStatus, RunStore, now
from gapeval.suites.base import Suite


def request_seed(run_seed: int, item_id: str, direction: Direction, sample: int) -> int:
    """A per-request seed that depends only on what is asked, never on batching or order."""
    digest = hashlib.sha256(f"{run_seed}\0{item_id}\0{direction}\0{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass
class RunStats:
    """What an execution pass did."""

    done: int = 0
    failed: int = 0
    unsupported: int = 0
    skipped_done: int = 0
    model_calls: int = 0
    requests: dict[str, int] = field(default_factory=lambda: {"und": 0, "gen": 0})


def _supported(model: UnifiedModel, item: Item, direction: Direction) -> bool:
    caps = model.capabilities
    if direction is Direction.UND:
        return caps.understands
    return caps.generates and (caps.edits or not item.gen.is_edit)


def execute(
    suite: Suite,
    model: UnifiedModel,
    store: RunStore,
    *,
    batch_size: int = 8,
    retry_failed: bool = True,
    progress: Callable[[int], None] | None = None,
) -> RunStats:
    """Produce every planned output not already done.

    Records for (item, direction, sample) are planned as pending first, then each output is written in
    its own transaction as soon as its batch returns. A second call, after a crash or not, asks the model
    only for what is still pending (and, with ``retry_failed``, what failed).

    Args:
        suite: The items.
        model: Any :class:`~gapeval.models.base.UnifiedModel`.
        store: The run directory; its manifest's spec gives seeds and sample counts.
        batch_size: Requests per model call.
        retry_failed: Ask again for outputs that failed before.
        progress: Called with the number of outputs finished (done, failed or skipped).

    """
    spec = store.manifest().spec
    samples = {Direction.UND: spec.samples_und, Direction.GEN: spec.samples_gen}
    store.plan(
        (item.id, d, s, request_seed(spec.seed, item.id, d, s))
        for item in suite.items
        for d in Direction
        for s in range(samples[d])
    )
    existing = {(o.item_id, o.direction, o.sample): o for o in store.outputs()}
    todo: dict[Direction, list[tuple[Item, int, int]]] = {Direction.UND: [], Direction.GEN: []}
    stats = RunStats()
    for item in suite.items:
        for direction in Direction:
            for sample in range(samples[direction]):
                rec = existing[(item.id, direction, sample)]
                redo = rec.status is OutputStatus.PENDING or (
                    retry_failed and rec.status is OutputStatus.FAILED
                )
                if not redo:
                    stats.skipped_done += 1
                    if progress:
                        progress(1)
                    continue
                if not _supported(model, item, direction):
                    store.put_output(
                        rec.model_copy(
                            update={
                                "status": OutputStatus.UNSUPPORTED,
                                "error": "model lacks this capability",
                            }
                        )
                    )
                    stats.unsupported += 1
                    if progress:
                        progress(1)
                    continue
                todo[direction].append((item, sample, rec.seed))
    store.update_manifest(started_at=store.manifest().started_at or now())
    store.log("execute", {"pending_und": len(todo[Direction.UND]), "pending_gen": len(todo[Direction.GEN])})

    for direction, work in todo.items():
        for start in range(0, len(work), batch_size):
            batch = work[start : start + batch_size]
            outputs = _call(model, direction, batch)
            stats.model_calls += 1
            stats.requests[str(direction)] += len(batch)
            for (item, sample, seed), out in zip(batch, outputs, strict=True):
                rec = OutputRecord(
                    item_id=item.id,
                    direction=direction,
                    sample=sample,
                    seed=seed,
                    status=OutputStatus.DONE,
                    meta=out.meta,
                )
                png: bytes | None = None
                if out.error is not None:
                    rec = rec.model_copy(update={"status": OutputStatus.FAILED, "error": out.error})
                elif isinstance(out, TextOutput):
                    rec = rec.model_copy(update={"text": out.text})
                elif out.image is not None:
                    png = png_bytes(out.image)
                else:
                    rec = rec.model_copy(update={"status": OutputStatus.FAILED, "error": "no image returned"})
                store.put_output(rec, png)
                if rec.status is OutputStatus.DONE:
                    stats.done += 1
                else:
                    stats.failed += 1
                if progress:
                    progress(1)
    if not store.outputs(OutputStatus.PENDING):
        store.update_manifest(finished_at=now())
    return stats


def _call(
    model: UnifiedModel, direction: Direction, batch: Sequence[tuple[Item, int, int]]
) -> Sequence[TextOutput | ImageOutput]:
    """One model call; an exception fails the batch's requests with its message instead of the run."""
    try:
        if direction is Direction.UND:
            und = [
                UnderstandRequest(
                    item_id=i.id,
                    prompt=i.und.prompt,
                    images=tuple(r.path for r in i.und.images),
                    seed=seed,
                    sample=s,
                )
                for i, s, seed in batch
            ]
            results: Sequence[TextOutput | ImageOutput] = model.understand(und)
        else:
            gen = [
                GenerateRequest(
                    item_id=i.id,
                    prompt=i.gen.prompt,
                    input_image=i.gen.input_image.path if i.gen.input_image else None,
                    seed=seed,
                    sample=s,
                )
                for i, s, seed in batch
            ]
            results = model.generate(gen)
    except Exception as exc:  # a model's failure is recorded per request, never a crash of the run
        err = f"{type(exc).__name__}: {exc}"
        return [
            TextOutput(error=err) if direction is Direction.UND else ImageOutput(error=err) for _ in batch
        ]
    if len(results) != len(batch):
        err = f"model returned {len(results)} outputs for {len(batch)} requests"
        return [
            TextOutput(error=err) if direction is Direction.UND else ImageOutput(error=err) for _ in batch
        ]
    return results
