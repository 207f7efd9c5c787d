"""The local executor: builds the model in this process and feeds it batches of the adapter's size.

Capabilities are checked where the model lives: a request the model cannot serve (an edit for a model
that cannot edit) comes back ``unsupported`` without a call. A model call that raises, or returns the
wrong number of outputs, fails only the requests of that call, with the message. A call that runs out of
accelerator memory is split in halves and retried, down to one request, before anything fails; later
batches then start at the size that fitted.

An I/O-bound adapter (an API, a model server) says how many calls it serves at once
(``parallel_calls``); the executor then keeps that many calls in flight on threads and yields each
call's results the moment it ends, so one slow request never holds back the others. A compute-bound
adapter (one GPU) leaves it at 1 and gets its batches one after another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from gapeval.errors import GapevalError
from gapeval.executors.base import ModelSpec, WorkResult
from gapeval.images import png_bytes
from gapeval.items import Direction
from gapeval.models.base import (
    DEFAULT_BATCH_SIZE,
    Capabilities,
    GenerateRequest,
    ImageOutput,
    TextOutput,
    UnderstandRequest,
    UnifiedModel,
    load_model,
)
from gapeval.records import OutputStatus, WorkUnit


def supported(caps: Capabilities, unit: WorkUnit) -> bool:
    """Whether a model with ``caps`` can serve ``unit``."""
    if unit.direction is Direction.UND:
        return caps.understands
    return caps.edits if unit.is_edit else caps.generates


def split_work(
    caps: Capabilities, units: Sequence[WorkUnit]
) -> tuple[list[WorkResult], dict[Direction, list[WorkUnit]]]:
    """``unsupported`` results for what ``caps`` cannot serve, and the rest per direction in plan order."""
    refused = [
        WorkResult(u, OutputStatus.UNSUPPORTED, error="model lacks this capability")
        for u in units
        if not supported(caps, u)
    ]
    return refused, {d: [u for u in units if u.direction is d and supported(caps, u)] for d in Direction}


def fixed_batches(
    work: Mapping[Direction, Sequence[WorkUnit]], size: int
) -> list[tuple[Direction, list[WorkUnit]]]:
    """Consecutive batches of ``size`` per direction: how every executor cuts the same work."""
    return [(d, list(todo[i : i + size])) for d, todo in work.items() for i in range(0, len(todo), size)]


class LocalExecutor:
    """Runs the model here, batch by batch; results are yielded (and committed) one by one."""

    name = "local"

    def __init__(self, model: UnifiedModel | None = None) -> None:
        """Use ``model`` if given (already built), else build it from the spec on first need."""
        self._model = model

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str]) -> LocalExecutor:
        """``local`` takes no argument or options.

        Raises:
            GapevalError: Given any (``--replicas`` and the like belong to ``--executor ray``).

        """
        if arg or options:
            named = arg or sorted(options)[0]
            raise GapevalError(f"the local executor takes no options ({named!r}); use --executor ray",
                               field="--executor")  # fmt: skip
        return cls()

    def model_description(self) -> dict[str, Any]:
        """The model's own description, once it is built."""
        return self._model.describe() if self._model is not None else {}

    def execute(
        self, model: ModelSpec, units: Sequence[WorkUnit], images: Mapping[str, str]
    ) -> Iterator[WorkResult]:
        """Build the model (only if there is work) and yield a result per unit."""
        if not units:
            return
        if self._model is None:
            self._model = load_model(model.spec, suite=model.context, options=model.options)
        mdl = self._model
        refused, work = split_work(mdl.capabilities, units)
        yield from refused
        size = max(1, model.batch_size or int(getattr(mdl, "batch_size", DEFAULT_BATCH_SIZE)))
        parallel = max(1, int(getattr(mdl, "parallel_calls", 1)))
        if parallel > 1:
            yield from self._parallel(mdl, work, images, size, parallel)
            return
        for direction, todo in work.items():
            start = 0
            while start < len(todo):
                batch = todo[start : start + size]
                results, fitted = _call_fitting(mdl, direction, batch, images)
                if fitted is not None:  # after an out-of-memory split, later batches use the size that fitted
                    size = min(size, fitted)
                start += len(batch)
                yield from results

    @staticmethod
    def _parallel(
        mdl: UnifiedModel,
        work: Mapping[Direction, Sequence[WorkUnit]],
        images: Mapping[str, str],
        size: int,
        parallel: int,
    ) -> Iterator[WorkResult]:
        """Keep ``parallel`` calls in flight; yield each call's results as soon as it ends."""
        calls = iter(fixed_batches(work, size))
        with ThreadPoolExecutor(parallel, thread_name_prefix="gapeval-call") as pool:
            running: set[Future[tuple[list[WorkResult], int | None]]] = set()
            while True:
                while len(running) < parallel and (call := next(calls, None)) is not None:
                    running.add(pool.submit(_call_fitting, mdl, call[0], call[1], images))
                if not running:
                    return
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield from fut.result()[0]


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an accelerator out-of-memory error (torch's, or any that says so)."""
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def _call_fitting(
    model: UnifiedModel, direction: Direction, batch: Sequence[WorkUnit], images: Mapping[str, str]
) -> tuple[list[WorkResult], int | None]:
    """Call the model; on out-of-memory, split the batch and retry the halves, down to one request.

    Returns:
        A result per request, and the batch size that fitted after a split (None when none was needed).

    """
    try:
        return list(_call(model, direction, batch, images, reraise=is_out_of_memory)), None
    except Exception as exc:
        if len(batch) == 1:
            return [WorkResult(batch[0], OutputStatus.FAILED, error=f"{type(exc).__name__}: {exc}")], 1
        mid = len(batch) // 2
        first, fit_a = _call_fitting(model, direction, batch[:mid], images)
        second, fit_b = _call_fitting(model, direction, batch[mid:], images)
        return first + second, min(fit_a or mid, fit_b or len(batch) - mid)


def _call(
    model: UnifiedModel,
    direction: Direction,
    batch: Sequence[WorkUnit],
    images: Mapping[str, str],
    reraise: Callable[[BaseException], bool] = lambda exc: False,
) -> Iterator[WorkResult]:
    """One model call; an exception fails the batch's requests with its message instead of the run.

    Exceptions for which ``reraise`` is true (out of memory) propagate, for the caller to split the batch.
    """
    t0 = time.perf_counter()
    try:
        if direction is Direction.UND:
            und = [
                UnderstandRequest(
                    item_id=u.item_id,
                    prompt=u.prompt,
                    images=tuple(images[sha] for sha in u.images),
                    seed=u.seed,
                    sample=u.sample,
                )
                for u in batch
            ]
            results: Sequence[TextOutput | ImageOutput] = model.understand(und)
        else:
            gen = [
                GenerateRequest(
                    item_id=u.item_id,
                    prompt=u.prompt,
                    input_image=images[u.input_image] if u.input_image else None,
                    seed=u.seed,
                    sample=u.sample,
                )
                for u in batch
            ]
            results = model.generate(gen)
    except Exception as exc:  # a model's failure is recorded per request, never a crash of the run
        if reraise(exc):
            raise
        err = f"{type(exc).__name__}: {exc}"
        for u in batch:
            yield WorkResult(u, OutputStatus.FAILED, error=err)
        return
    wall = (time.perf_counter() - t0) / len(batch)
    if not isinstance(results, Sequence) or len(results) != len(batch):
        n = len(results) if isinstance(results, Sequence) else type(results).__name__
        for u in batch:
            yield WorkResult(
                u, OutputStatus.FAILED, error=f"model returned {n} outputs for {len(batch)} requests"
            )
        return
    for u, out in zip(batch, results, strict=True):
        yield _result(u, out, wall)


def _result(unit: WorkUnit, out: Any, wall: float) -> WorkResult:
    meta = dict(getattr(out, "meta", None) or {})
    error = getattr(out, "error", None)
    if error is not None:
        return WorkResult(unit, OutputStatus.FAILED, error=str(error), meta=meta, wall_s=wall)
    if unit.direction is Direction.UND:
        text = getattr(out, "text", None)
        if not isinstance(text, str):
            return WorkResult(unit, OutputStatus.FAILED, error="no text returned", meta=meta, wall_s=wall)
        return WorkResult(unit, OutputStatus.DONE, text=text, meta=meta, wall_s=wall)
    image = getattr(out, "image", None)
    if image is None:
        return WorkResult(unit, OutputStatus.FAILED, error="no image returned", meta=meta, wall_s=wall)
    try:
        png = png_bytes(image)
    except Exception as exc:  # not an image the store can write: that request fails, not the run
        return WorkResult(unit, OutputStatus.FAILED, error=f"unusable image ({exc})", meta=meta, wall_s=wall)
    return WorkResult(unit, OutputStatus.DONE, image_png=png, meta=meta, wall_s=wall)
