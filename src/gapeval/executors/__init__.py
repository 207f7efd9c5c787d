"""Executors: they turn planned work units into outputs; the committer alone writes them to the store."""

from gapeval.executors.base import (
    Committer,
    Executor,
    ModelSpec,
    Plan,
    WorkResult,
    image_index,
    plan,
    request_seed,
)

__all__ = [
    "Committer",
    "Executor",
    "ModelSpec",
    "Plan",
    "WorkResult",
    "image_index",
    "plan",
    "request_seed",
]
