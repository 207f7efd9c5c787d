"""Suites: where items come from. ``load_suite`` turns a suite spec string into a :class:`Suite`."""

from __future__ import annotations

import os
from pathlib import Path

from gapeval.errors import GapevalError
from gapeval.suites.base import Skipped, Suite

__all__ = ["SUITES", "Skipped", "Suite", "data_home", "load_suite"]

#: Named suites and what they are; paths (a folder or a .jsonl file) are accepted too.
SUITES: dict[str, str] = {
    "gapeval": "the published GapEval snapshot (fetch it first: gapeval fetch gapeval)",
    "shapes-v1": "the built-in procedural world: 1280 held-out items, 320 per category, exact judges",
    "shapes-v1-mini": "96 items of the same world, for quick runs and CI",
}


def data_home() -> Path:
    """Where fetched data lives: ``$GAPEVAL_HOME`` or ``~/.cache/gapeval``."""
    return Path(os.environ.get("GAPEVAL_HOME", Path.home() / ".cache" / "gapeval"))


def load_suite(spec: str, *, skip_invalid: bool = False) -> Suite:
    """Load a suite by name or path.

    Args:
        spec: ``gapeval`` (the fetched snapshot), a folder in the authors' layout, a folder holding
            ``suite.jsonl``, or a ``.jsonl`` file.
        skip_invalid: Load what is good and list the rest in ``Suite.skipped``.

    """
    from gapeval.suites.jsonl import load_jsonl
    from gapeval.suites.official import load_official

    if spec.startswith("shapes-"):
        from gapeval.suites.shapes import SHAPES_SUITES, build

        if spec in SHAPES_SUITES:
            return build(spec, data_home() / "suites")
    if spec == "gapeval":
        local = data_home() / "gapeval"
        if not local.is_dir():
            raise GapevalError(
                "the GapEval snapshot is not fetched yet; run: gapeval fetch gapeval", file=local
            )
        return load_official(local, skip_invalid=skip_invalid, name="gapeval")
    path = Path(spec)
    if path.suffix == ".jsonl" or (path.is_dir() and (path / "suite.jsonl").is_file()):
        return load_jsonl(path, skip_invalid=skip_invalid)
    if path.is_dir():
        return load_official(path, skip_invalid=skip_invalid, name=f"gapeval:{path.name}")
    known = ", ".join(SUITES)
    raise GapevalError(f"unknown suite {spec!r}: not a known name ({known}) nor an existing path", file=spec)
