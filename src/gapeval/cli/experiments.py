"""``gapeval curve``, ``sweep`` and ``knowledge``: studies made of many runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gapeval.cli.shell import JsonOpt, app, guard, print_json, print_notes, say, show, tell


@app.command("curve")
def curve_cmd(
    checkpoints: Annotated[
        list[Path],
        typer.Argument(help="Checkpoints, or a training folder of step_* files (gapeval toy train -o)."),
    ],
    suite: Annotated[str, typer.Option(help="Suite to evaluate every checkpoint on.")] = "shapes-v1",
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the runs, table and figure.")
    ] = Path("curve"),
    model: Annotated[str, typer.Option(help="Model spec; {checkpoint} is replaced by each path.")] = (
        "toy:{checkpoint}"
    ),
    fraction: Annotated[
        float, typer.Option(help="Share of the final accuracy that counts as reached.")
    ] = 0.9,
    n_boot: Annotated[int, typer.Option("--boot", help="Bootstrap resamples (gap and lag intervals).")] = 200,
    samples_gen: Annotated[int | None, typer.Option(help="Images per item (default: the suite's).")] = None,
    seed: Annotated[int, typer.Option(help="Run seed, the same for every checkpoint.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Both directions over a checkpoint series: accuracy curves, the gap per checkpoint, and the lag."""
    from gapeval import api

    def go() -> None:
        res = api.curve(checkpoints, suite=suite, out=out_dir, model=model, fraction=fraction, n_boot=n_boot,
                        samples_gen=samples_gen, seed=seed, progress=None if as_json else tell)  # fmt: skip
        if as_json:
            print_json(res.model_dump())
            return
        show(res.table())
        for f in res.files:
            say(f"wrote {f}")

    guard(go)


@app.command("sweep")
def sweep_cmd(
    spec: Annotated[Path, typer.Argument(help="Sweep spec (YAML): suites, models, seeds, judges, executor.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder of the sweep's runs.")] = Path("sweep"),
    html: Annotated[bool, typer.Option("--html/--no-html", help="Write one HTML report per suite.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Many runs (models x suites x judges x seeds) as one resumable job, ending with one leaderboard."""
    from gapeval import api
    from gapeval.report.tables import leaderboard_table

    def go() -> None:
        res = api.sweep(spec, out_dir, html=html, progress=None if as_json else tell)
        if as_json:
            scores = [{"suite": s, "judges": list(c), **sc.to_json()} for (s, c), sc in res.scores.items()]
            print_json({
                "runs": [{**vars(r), "path": str(r.path)} for r in res.runs],
                "scores": scores,
                "reports": {k: str(v) for k, v in res.reports.items()},
            })  # fmt: skip
            return
        for (suite, chain), scored in res.scores.items():
            title = f"{res.name}: {suite}, judged by {' > '.join(chain)}"
            show(leaderboard_table(scored.leaderboard, title=title, platform=scored.platform))
            print_notes(scored.notes)
        for suite, index in res.reports.items():
            say(f"html report ({suite}): {index}")

    guard(go)


knowledge_app = typer.Typer(
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Teach knowledge through one direction and measure whether it reaches the other.",
)
app.add_typer(knowledge_app, name="knowledge")

SpecArg = Annotated[
    Path | None,
    typer.Argument(help="Experiment spec (YAML); default: the built-in one on the built-in model."),
]
KnowOut = Annotated[
    Path | None, typer.Option("--out", "-o", help="Experiment folder (default knowledge-EXPERIMENT).")
]
ReportOpt = Annotated[
    bool, typer.Option("--html/--no-html", help="Also write the HTML report over every run.")
]


def _knowledge(experiment: str, spec: Path | None, out_dir: Path | None, report: bool, as_json: bool) -> None:
    from gapeval import api

    def go() -> None:
        say_progress = None if as_json else tell
        res = api.knowledge(experiment, spec, out=out_dir, html=report, progress=say_progress)  # type: ignore[arg-type]
        if as_json:
            print_json(res.model_dump())
            return
        show(res.table())
        sec = res.seconds
        reused = f"; the arms took {sec['arms']:.0f} s when trained" if sec["arms"] > sec["train"] + 1 else ""
        took = f"took {sec['total']:.0f} s (training {sec['train']:.0f} s, evaluation {sec['eval']:.0f} s"
        say(f"{took}{reused})")
        for f in res.files:
            say(f"wrote {f}")

    guard(go)


@knowledge_app.command("inject")
def knowledge_inject(spec: SpecArg = None, out_dir: KnowOut = None, html: ReportOpt = True,
                     as_json: JsonOpt = False) -> None:  # fmt: skip
    """Teach new entities through understanding, generation or both; evaluate both directions."""
    _knowledge("inject", spec, out_dir, html, as_json)


@knowledge_app.command("edit")
def knowledge_edit(spec: SpecArg = None, out_dir: KnowOut = None, html: ReportOpt = True,
                   as_json: JsonOpt = False) -> None:  # fmt: skip
    """Change known facts through one direction; check efficacy, generalisation and locality both ways."""
    _knowledge("edit", spec, out_dir, html, as_json)
