"""The Ray executor: model replicas as Ray actors, fed batches, results streamed back to the one writer.

``gapeval run ... --executor ray [--ray-address auto|ray://HOST:PORT] [--replicas N]
[--gpus-per-replica G]`` builds ``N`` actors, each holding one replica of the model (built from the same
:class:`~gapeval.executors.base.ModelSpec`, on its own GPUs or CPUs), and keeps every replica busy with
batches of pending work. The driver is the only process that writes the run store: results come back
to it and the :class:`~gapeval.executors.base.Committer` writes them as they arrive, exactly as for the
local executor, so resume, the store's guarantees and the records are the same.

- **Batches** are cut exactly as the local executor cuts them (per direction, in plan order, the
  adapter's batch size), so a model whose outputs depend only on each request's seed gives the same
  records on Ray as locally.
- **Images cross the wire once**: each input image is put into Ray's object store once (keyed by its
  SHA-256) and a replica fetches it the first time one of its batches needs it, keeping it on local
  disk after; outputs come back once, as PNG bytes in the result.
- **Faults**: a model call that raises fails only its requests (as locally). A replica that dies (its
  process killed, out of host memory, a lost node) loses only its in-flight batches: they are put back
  at the front of the queue for the other replicas, and a new replica replaces the dead one. A batch
  whose replica has died ``max_attempts`` times is recorded as failed, never retried forever. A driver
  that dies leaves the store as a local run would: run the command again and it resumes.
- **Judging** is not distributed: it runs on the driver after the outputs, with the same concurrency and
  rate limits as a local run (judge calls are network-bound, not model-bound).

Ray is imported only here and only when this executor is used (``pip install 'gapeval[ray]'``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gapeval.errors import GapevalError
from gapeval.executors.base import ModelSpec, WorkResult
from gapeval.items import Direction
from gapeval.models.base import DEFAULT_BATCH_SIZE, Capabilities, UnifiedModel, load_model
from gapeval.options import set_options
from gapeval.records import OutputStatus, WorkUnit


@dataclass
class RaySettings:
    """Options of the Ray executor (``--executor-opt KEY=VALUE``, or the ``run`` flags that set them).

    Attributes:
        address: ``""`` (start Ray here, or join the one ``RAY_ADDRESS`` names), ``auto`` (the cluster
            this machine belongs to) or ``ray://HOST:PORT`` (a remote cluster through Ray Client).
        replicas: Model replicas (actors).
        gpus_per_replica: GPUs each replica holds (fractions share a GPU).
        cpus_per_replica: CPUs each replica holds.
        in_flight: Batches queued per replica at once (2 keeps a replica busy while a result travels).
            A replica that dies can cost up to this many batches: the one it was serving, those queued
            behind it, and one whose reply it had not yet sent.
        max_attempts: Times a batch may lose its replica before it is recorded as failed.
        runtime_env: A Ray runtime environment as JSON (``{"pip": ["gapeval[transformers]"]}``, env vars,
            a working dir) for clusters whose workers do not have gapeval installed.

    """

    address: str = ""
    replicas: int = 1
    gpus_per_replica: float = 0.0
    cpus_per_replica: float = 1.0
    in_flight: int = 2
    max_attempts: int = 3
    runtime_env: str = ""


class Replica:
    """One model replica inside a Ray actor (the class Ray instantiates remotely).

    Args:
        model: The model to build here.

    """

    def __init__(self, model: ModelSpec) -> None:
        self.model: UnifiedModel = load_model(model.spec, suite=model.context, options=model.options)
        self.folder = Path(tempfile.mkdtemp(prefix="gapeval-ray-images-"))
        self.paths: dict[str, str] = {}

    def info(self) -> dict[str, Any]:
        """Capabilities, preferred batch size, description and process id of this replica."""
        return {
            "capabilities": self.model.capabilities.model_dump(),
            "batch_size": int(getattr(self.model, "batch_size", DEFAULT_BATCH_SIZE)),
            "describe": self.model.describe(),
            "pid": os.getpid(),
        }

    def run(self, direction: Direction, batch: list[WorkUnit], blobs: dict[str, Any]) -> list[WorkResult]:
        """Serve one batch; ``blobs`` maps images this replica has not seen yet to their object refs."""
        import ray

        from gapeval.executors.local import _call_fitting

        if blobs:
            for sha, data in zip(blobs, ray.get(list(blobs.values())), strict=True):
                path = self.folder / sha
                path.write_bytes(data)
                self.paths[sha] = str(path)
        results, _ = _call_fitting(self.model, direction, batch, self.paths)
        return results


@dataclass
class _Batch:
    direction: Direction
    units: list[WorkUnit]
    attempts: int = 0


@dataclass
class _Slot:
    actor: Any
    generation: int = 0
    seen: set[str] = field(default_factory=set)
    running: int = 0


class RayExecutor:
    """Shards model inference over Ray actors; yields results to the driver's single writer."""

    name = "ray"

    def __init__(self, settings: RaySettings | None = None) -> None:
        self.settings = settings or RaySettings()
        self._description: dict[str, Any] = {}
        #: What happened, for tests and the log: replicas started, batches re-queued, batches failed.
        self.events: dict[str, int] = {"replicas_started": 0, "requeued": 0, "abandoned": 0}

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str]) -> RayExecutor:
        """``ray`` or ``ray:ADDRESS``; options: :class:`RaySettings`' fields.

        Raises:
            GapevalError: An unknown option, a bad value, or a runtime environment that is not JSON.

        """
        s = RaySettings()
        set_options(s, options, "--executor-opt")
        if arg:
            s.address = arg
        if s.replicas < 1 or s.in_flight < 1 or s.max_attempts < 1:
            raise GapevalError("replicas, in_flight and max_attempts must be >= 1", field="--replicas")
        if s.gpus_per_replica < 0 or s.cpus_per_replica < 0:
            raise GapevalError("gpus and cpus per replica must be >= 0", field="--gpus-per-replica")
        if s.runtime_env:
            try:
                env = json.loads(s.runtime_env)
            except json.JSONDecodeError as exc:
                raise GapevalError(f"runtime_env is not JSON ({exc.msg})", field="runtime_env") from exc
            if not isinstance(env, dict):
                raise GapevalError("runtime_env must be a JSON object", field="runtime_env")
        return cls(s)

    def model_description(self) -> dict[str, Any]:
        """The replicas' model description (the first replica's ``describe()``)."""
        return self._description

    def _connect(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise GapevalError(
                "the ray executor needs: pip install 'gapeval[ray]'", field="--executor"
            ) from exc
        if not ray.is_initialized():
            env = json.loads(self.settings.runtime_env) if self.settings.runtime_env else None
            try:
                ray.init(address=self.settings.address or None, runtime_env=env, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)  # fmt: skip
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise GapevalError(f"cannot reach Ray: {exc}", field="--ray-address") from exc
        return ray

    def execute(
        self, model: ModelSpec, units: Sequence[WorkUnit], images: Mapping[str, str]
    ) -> Iterator[WorkResult]:
        """Start the replicas (only if there is work), then keep each busy until every unit has a result."""
        if not units:
            return
        ray = self._connect()
        s = self.settings
        remote = ray.remote(Replica).options(num_cpus=s.cpus_per_replica, num_gpus=s.gpus_per_replica,
                                             max_restarts=0, max_task_retries=0)  # fmt: skip

        def start() -> Any:
            self.events["replicas_started"] += 1
            return remote.remote(model)

        slots = [_Slot(start()) for _ in range(s.replicas)]
        try:
            info = ray.get(slots[0].actor.info.remote())
        except ray.exceptions.RayActorError as exc:
            raise GapevalError(
                f"the model could not be built on a replica: {_cause(exc)}", field="model"
            ) from exc
        self._description = dict(info["describe"])
        from gapeval.executors.local import fixed_batches, split_work

        refused, work = split_work(Capabilities.model_validate(info["capabilities"]), units)
        yield from refused
        size = max(1, model.batch_size or int(info["batch_size"]))
        queue = deque(_Batch(d, batch) for d, batch in fixed_batches(work, size))
        refs: dict[str, Any] = {}  # image sha -> object ref, each put once
        running: dict[Any, tuple[int, int, _Batch]] = {}  # result ref -> (slot, its generation, batch)
        try:
            while queue or running:
                for k, slot in enumerate(slots):
                    while queue and slot.running < s.in_flight:
                        batch = queue.popleft()
                        need = {sha for u in batch.units for sha in (*u.images, *((u.input_image,) if
                                u.input_image else ()))} - slot.seen  # fmt: skip
                        for sha in need - refs.keys():
                            refs[sha] = ray.put(Path(images[sha]).read_bytes())
                        ref = slot.actor.run.remote(
                            batch.direction, batch.units, {sha: refs[sha] for sha in need}
                        )
                        slot.seen |= need
                        slot.running += 1
                        running[ref] = (k, slot.generation, batch)
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    k, generation, batch = running.pop(ref)
                    slot = slots[k]
                    if generation == slot.generation:
                        slot.running -= 1
                    try:
                        yield from ray.get(ref)
                    except ray.exceptions.RayActorError as exc:
                        if generation == slot.generation:  # replace the dead replica once
                            slots[k] = _Slot(start(), generation + 1)
                        batch.attempts += 1
                        if batch.attempts >= s.max_attempts:
                            self.events["abandoned"] += 1
                            error = f"replica died {batch.attempts} times serving this batch: {_cause(exc)}"
                            yield from (WorkResult(u, OutputStatus.FAILED, error=error) for u in batch.units)
                        else:
                            self.events["requeued"] += 1
                            queue.appendleft(batch)
                    except ray.exceptions.RayTaskError as exc:  # not the model (that fails per request)
                        error = f"replica error: {_cause(exc)}"
                        yield from (WorkResult(u, OutputStatus.FAILED, error=error) for u in batch.units)
        finally:
            for slot in slots:
                ray.kill(slot.actor)


def _cause(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
