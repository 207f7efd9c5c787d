"""``gapeval score``, ``correlate``, ``gap`` and ``platform-check``: the numbers, from stored verdicts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from gapeval.cli.shell import (
    BootOpt,
    CorrectByOpt,
    FragilityOpt,
    JsonOpt,
    app,
    guard,
    print_json,
    print_notes,
    say,
    show,
)
from gapeval.errors import GapevalError


@app.command("score")
def score_cmd(
    runs: Annotated[list[Path] | None, typer.Argument(help="Run directories (one model each).")] = None,
    judge: Annotated[
        list[str] | None, typer.Option("--judge", "-j", help="Judge ids, by precedence.")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table, json or csv (the MIRT table when fitted).")
    ] = "table",
    method: Annotated[
        str, typer.Option(help="mirt (identified, with CIs), reference (the paper's scorer) or both.")
    ] = "mirt",
    coupling: Annotated[
        str, typer.Option(help="reference method: categories (released) or models (appendix).")
    ] = "categories",
    fragility_n: FragilityOpt = 6,
    n_boot: BootOpt = 200,
    responses: Annotated[Path | None, typer.Option(help="Score a tidy response CSV instead of runs.")] = None,
    export: Annotated[Path | None, typer.Option(help="Also write the response tensor as tidy CSV.")] = None,
    unsupported_as_wrong: Annotated[
        bool,
        typer.Option(help="Count outputs a model cannot produce (e.g. edits) as wrong, not missing."),
    ] = False,
    judge_audit: Annotated[
        Path | None,
        typer.Option(help="An audit of the judge (gapeval audit): also show the corrected scores."),
    ] = None,
    correct_by: CorrectByOpt = "direction",
    as_json: JsonOpt = False,
) -> None:
    """Score runs from their stored verdicts: accuracies, joint tables, and the gap."""
    from gapeval import api
    from gapeval.report.render import to_csv
    from gapeval.report.tables import score_tables

    def go() -> None:
        if fmt not in ("table", "json", "csv"):
            raise GapevalError(f"unknown format {fmt!r}; available: table, json, csv", field="--format")
        result = api.score(
            runs or [],
            judges=judge,
            method=method,  # type: ignore[arg-type]
            coupling=coupling,  # type: ignore[arg-type]
            fragility_n=fragility_n,
            n_boot=n_boot,
            responses=responses,
            unsupported_as_wrong=unsupported_as_wrong,
            export=export,
            judge_audit=judge_audit,
            correct_by=correct_by,
        )
        tables = score_tables(result, coupling=coupling)
        if as_json or fmt == "json":
            print_json(result.to_json())
        elif fmt == "csv":
            # One table per CSV: the identified gap when it was fitted, else the leaderboard; the same
            # schema as the report's tables/mirt_gap.csv and tables/leaderboard.csv.
            if tables:
                sys.stdout.write(to_csv(tables[-1]))
        else:
            show(*tables)
        print_notes(result.notes)

    guard(go)


@app.command("correlate")
def correlate_cmd(
    scores: Annotated[Path, typer.Argument(help="CSV: a model column, one column per external score.")],
    runs: Annotated[list[Path] | None, typer.Option("--run", help="Runs to compute the gaps from.")] = None,
    responses: Annotated[
        Path | None, typer.Option(help="Tidy response CSV to compute the gaps from.")
    ] = None,
    n_boot: Annotated[int, typer.Option("--boot", help="Bootstrap resamples over models.")] = 2000,
    as_json: JsonOpt = False,
) -> None:
    """Relate gaps to external benchmark scores (Spearman, Kendall, bootstrap CIs)."""
    from gapeval import api
    from gapeval.report.tables import correlation_table

    def go() -> None:
        result = api.correlate(scores, runs=runs or [], responses=responses, n_boot=n_boot)
        if as_json:
            print_json([r.model_dump() for r in result])
            return
        show(correlation_table(result))

    guard(go)


@app.command("gap")
def gap_cmd(
    joint_json: Annotated[Path, typer.Argument(help="Authors' format: {model: [[p11,p10,p01,p00], ...]}.")],
    coupling: Annotated[
        str, typer.Option(help="categories (released scorer) or models (appendix).")
    ] = "categories",
    fragility_n: FragilityOpt = 6,
    workers: int = 2,
    as_json: JsonOpt = False,
) -> None:
    """Paper-compatible Gap Scores from joint tables; writes <stem>_gapres.json like the authors' scorer."""
    from gapeval import api
    from gapeval.report.tables import reference_gap_table

    def go() -> None:
        res = api.reference_gap(
            joint_json,
            coupling=coupling,  # type: ignore[arg-type]
            fragility_n=fragility_n,
            workers=workers,
        )
        if as_json:
            print_json({
                "output": str(res.output),
                "results": {m: r.model_dump() for m, r in res.results.items()},
                "fragility": {m: f.model_dump() for m, f in res.fragility.items()},
            })  # fmt: skip
            return
        show(
            reference_gap_table(
                res.results, res.fragility, coupling=res.coupling, fragility_n=res.fragility_n
            )
        )
        say(res.platform)
        say(f"wrote {res.output}")

    guard(go)


@app.command("platform-check")
def platform_check_cmd(
    refresh: Annotated[bool, typer.Option(help="Fit again even if this machine was checked.")] = False,
    workers: int = 2,
    as_json: JsonOpt = False,
) -> None:
    """Fit the authors' published Gap Score vectors here and say whether they reproduce bit for bit."""
    from gapeval import api

    def go() -> None:
        check = api.platform_check(refresh=refresh, workers=workers)
        if as_json:
            print_json({**check.model_dump(), "reproduces": check.reproduces})
            return
        say(check.describe())
        for name, diff in sorted(check.differing.items()):
            say(f"  {name:16s} largest difference {diff:.6f}")
        say("fingerprint: " + ", ".join(f"{k}={v}" for k, v in check.fingerprint.items() if v))

    guard(go)
