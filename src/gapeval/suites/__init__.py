"""Suites: where items come from. ``load_suite`` turns a suite spec string into a :class:`Suite`."""

from __future__ import annotations

from pathlib import Path

from gapeval.errors import GapevalError
from gapeval.registry import SUITES as SUITE_REGISTRY
from gapeval.suites.base import Skipped, Suite, SuiteSource, data_home

__all__ = ["Skipped", "Suite", "SuiteSource", "available_suites", "data_home", "load_suite"]


def available_suites() -> dict[str, str]:
    """Named suites (built in and plugins) and what they are; paths are accepted too."""
    return SUITE_REGISTRY.describe()


def load_suite(spec: str, *, skip_invalid: bool = False) -> Suite:
    """Load a suite by name or path.

    Args:
        spec: ``gapeval`` (the fetched snapshot), a folder in the authors' layout, a folder holding
            ``suite.jsonl``, or a ``.jsonl`` file.
        skip_invalid: Load what is good and list the rest in ``Suite.skipped``.

    """
    from gapeval.suites.jsonl import load_jsonl
    from gapeval.suites.official import load_official

    name = spec.partition(":")[0]
    if name in SUITE_REGISTRY.entries():
        source = SUITE_REGISTRY.load(name)
        suite = source.load(spec, skip_invalid=skip_invalid)
        if not isinstance(suite, Suite):
            raise GapevalError(
                f"suite source {name!r} returned {type(suite).__name__}, not a Suite", field="suite"
            )
        return suite
    path = Path(spec)
    if path.suffix == ".jsonl" or (path.is_dir() and (path / "suite.jsonl").is_file()):
        return load_jsonl(path, skip_invalid=skip_invalid)
    if path.is_dir():
        return load_official(path, skip_invalid=skip_invalid, name=f"gapeval:{path.name}")
    known = ", ".join(available_suites())
    raise GapevalError(f"unknown suite {spec!r}: not a known name ({known}) nor an existing path", file=spec)
