"""``gapeval suites``, ``models``, ``validate``, ``fetch``, ``sample``, ``serve``: what there is to load."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from gapeval.cli.shell import JsonOpt, app, guard, options, out, print_json, say, show, tell


@app.command("suites")
def suites_cmd(as_json: JsonOpt = False) -> None:
    """List the suites gapeval knows by name (built in and plugins)."""
    from gapeval import api

    found = api.suites()
    if as_json:
        print_json(found)
        return
    for name, desc in found.items():
        out.print(Text.assemble((name, "bold"), "  ", desc))
    out.print("Any folder in the authors' layout, or a .jsonl suite file, works as a suite too.", style="dim")


@app.command("models")
def models_cmd(as_json: JsonOpt = False) -> None:
    """List the model families, judges and executors (each loads lazily; extras stay optional)."""
    from gapeval import api
    from gapeval.report.tables import listing_table

    data = api.listing()
    if as_json:
        print_json(data)
        return
    show(*(listing_table(kind, entries) for kind, entries in data.items()))


@app.command("validate")
def validate_cmd(
    suite: Annotated[str, typer.Argument(help="Suite name or path.")],
    skip_invalid: Annotated[bool, typer.Option(help="List every bad item instead of stopping.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load a suite and report what it holds (and, with --skip-invalid, what it skipped)."""
    from gapeval import api

    def go() -> None:
        s = api.validate(suite, skip_invalid=skip_invalid)
        counts = {c.value: n for c, n in s.category_counts().items()}
        if as_json:
            print_json({"name": s.name, "items": len(s.items), "content_hash": s.content_hash(),
                        "categories": counts, "skipped": [k.line() for k in s.skipped]})  # fmt: skip
            return
        say(f"{s.name}: {len(s.items)} items, hash {s.content_hash()[:12]}")
        for c, n in counts.items():
            say(f"  {c}: {n}")
        for k in s.skipped:
            tell(f"skipped: {k.line()}")

    guard(go)


@app.command("fetch")
def fetch_cmd(name: Annotated[str, typer.Argument(help="What to fetch: gapeval.")] = "gapeval") -> None:
    """Download the public GapEval snapshot into the data home (needs network and gapeval[hub])."""
    from gapeval import api

    def go() -> None:
        path = api.fetch(name)
        say(f"fetched the GapEval snapshot into {path}")

    guard(go)


@app.command("sample")
def sample_cmd(
    target: Annotated[Path, typer.Argument(help="Folder to write the sample tree into.")] = Path(
        "gapeval-sample"
    ),
) -> None:
    """Write a 12-item sample in the authors' layout, with replayable outputs and their verdicts."""
    from gapeval import api

    def go() -> None:
        res = api.sample(target)
        say(f"wrote {res.path}; try: gapeval run {res.path} -m replay:{res.model} -j rules -j recorded")

    guard(go)


@app.command("serve")
def serve_cmd(
    model: Annotated[str, typer.Argument(help="Model spec to serve (toy, py:FILE.py:Class, ...).")],
    port: Annotated[int, typer.Option(help="Port (0: any free one, printed).")] = 8900,
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
    model_opt: Annotated[
        list[str] | None, typer.Option("--model-opt", help="Adapter option KEY=VALUE.")
    ] = None,
) -> None:
    """Serve a model over the gapeval model-server protocol (run it with -m http://HOST:PORT)."""
    from gapeval import api

    def ready(url: str) -> None:
        say(f"serving {model} on {url}")
        sys.stdout.flush()

    guard(lambda: api.serve(model, options(model_opt), host=host, port=port, on_ready=ready))
