"""``gapeval probe overlap``: where the two directions' training signals land in a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gapeval.cli.shell import JsonOpt, app, guard, options, print_json, show

probe_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="Probe why the gap exists.")
app.add_typer(probe_app, name="probe")


@probe_app.command("overlap")
def overlap_cmd(
    model: Annotated[
        str, typer.Argument(help="toy, toy:CHECKPOINT (any --arch variant) or janus:PATH.")
    ] = "toy",
    facts: Annotated[
        Path | None, typer.Option(help="Knowledge spec whose facts are asked both ways (default: built-in).")
    ] = None,
    examples: Annotated[int, typer.Option(help="Examples per direction.")] = 32,
    topk: Annotated[float, typer.Option(help="Top percentage of parameters by gradient magnitude.")] = 1.0,
    seed: int = 0,
    arms: Annotated[
        Path | None, typer.Option(help="A knowledge experiment's folder: also where each arm wrote.")
    ] = None,
    model_opt: Annotated[
        list[str] | None, typer.Option("--model-opt", help="Adapter option KEY=VALUE (device, dtype).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The understanding and generation gradients of the same facts, compared per module and layer."""
    from gapeval import api

    def go() -> None:
        res = api.probe_overlap(model, facts=facts, examples=examples, topk=topk, seed=seed,
                                options=options(model_opt), arms=arms)  # fmt: skip
        if as_json:
            print_json({"overlap": res.overlap.model_dump(),
                        "changes": res.changes.model_dump() if res.changes else None})  # fmt: skip
            return
        show(res.overlap.table(), *([res.changes.table()] if res.changes else []))

    guard(go)


@probe_app.command("representations")
def representations_cmd(
    model: Annotated[str, typer.Argument(help="toy or toy:CHECKPOINT (any --arch variant).")] = "toy",
    facts: Annotated[
        Path | None, typer.Option(help="Knowledge spec whose facts are the entities (default: the world's).")
    ] = None,
    per_entity: Annotated[int, typer.Option(help="Examples per entity and direction.")] = 16,
    seed: int = 0,
    at: Annotated[
        str, typer.Option(help="Read each request at its last token, or at the entity's name token (entity).")
    ] = "last",
    as_json: JsonOpt = False,
) -> None:
    """Per layer, whether an entity read on the understanding path reads on the generation path."""
    from gapeval import api

    def go() -> None:
        res = api.probe_representations(model, facts=facts, per_entity=per_entity, seed=seed, at=at)
        if as_json:
            print_json(res.model_dump())
            return
        show(res.table())

    guard(go)
