"""``gapeval study mechanisms``: the paper's three mechanisms on variants of the built-in model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gapeval.cli.shell import JsonOpt, app, guard, print_json, say, show, tell

study_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="Studies over many experiments.")
app.add_typer(study_app, name="study")


@study_app.command("mechanisms")
def mechanisms_cmd(
    spec: Annotated[
        Path | None, typer.Argument(help="Study spec (YAML); default: the built-in one (shipped recipe).")
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Study folder.")] = Path("study-mechanisms"),
    as_json: JsonOpt = False,
) -> None:
    """Train or reuse each variant (shared, mot, towers); measure gap, lag, transfer and both probes."""
    from gapeval import api

    def go() -> None:
        res = api.study_mechanisms(spec, out=out_dir, progress=None if as_json else tell)
        if as_json:
            print_json(res.model_dump())
            return
        show(res.summary())
        sec = res.seconds
        say(f"took {sec['total']:.0f} s (training {sec['train']:.0f} s, measurements {sec['study']:.0f} s); "
            f"page: {out_dir / 'index.html'}")  # fmt: skip

    guard(go)
