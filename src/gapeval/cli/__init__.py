"""The ``gapeval`` command: one module per command group, each command one :mod:`gapeval.api` call.

A new command lands in its own module here (or in its group's), registered on :data:`app` by importing
it below; it resolves options, calls the facade, and draws the result with the renderers.
"""

from __future__ import annotations

from typing import Annotated

import typer

from gapeval.cli.shell import app, out

# Imported for their commands, in the order --help lists them.
# isort: off
from gapeval.cli import run, judging, scoring, reports, experiments, catalog, toy, rubrics, probes, study  # noqa: F401
# isort: on

__all__ = ["app", "main"]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"gapeval {version('gapeval')}", markup=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Measure the understanding/generation gap of unified multimodal models."""


def main() -> None:
    """Console-script entry point."""
    app()
