"""gapeval: measure how far a unified multimodal model is from being unified.

The data flow is suites -> models -> executor -> run store -> judges -> scoring -> reports. This facade
holds the verbs a notebook needs (each returns a typed result the CLI and the reports render) and the
record types people touch.
"""

from importlib.metadata import PackageNotFoundError, version

from gapeval.api import DemoResult, RunResult, ScoreResult, demo, judge, report, run, score
from gapeval.errors import GapevalError
from gapeval.items import Category, Direction, Item
from gapeval.records import OutputRecord, RunManifest, RunSpec, VerdictRecord, WorkUnit

try:
    __version__ = version("gapeval")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Category",
    "DemoResult",
    "Direction",
    "GapevalError",
    "Item",
    "OutputRecord",
    "RunManifest",
    "RunResult",
    "RunSpec",
    "ScoreResult",
    "VerdictRecord",
    "WorkUnit",
    "__version__",
    "demo",
    "judge",
    "report",
    "run",
    "score",
]
