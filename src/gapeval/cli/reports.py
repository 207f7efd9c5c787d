"""``gapeval report`` and ``gapeval export``: the HTML report of runs, and a run packed for others."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gapeval.cli.shell import BootOpt, CorrectByOpt, FragilityOpt, app, guard, say


@app.command("report")
def report_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (several: compared side by side).")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder of the HTML report (default: RUN/report).")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", "-k", help="Also write these per-run reports (registry names, e.g. markdown)."
        ),
    ] = None,
    fragility_n: FragilityOpt = 6,
    n_boot: BootOpt = 200,
    judge_audit: Annotated[
        Path | None,
        typer.Option(help="An audit of the judge (gapeval audit): also show the corrected scores."),
    ] = None,
    correct_by: CorrectByOpt = "direction",
) -> None:
    """Write the HTML report of runs from their stored verdicts (never re-runs or re-judges).

    The folder holds index.html (open it from disk), provenance.html, tables/*.csv, figures/*.svg|png
    and summary.md.
    """
    from gapeval import api

    def go() -> None:
        site = api.report_site(run_dirs, out=out_dir, fragility_n=fragility_n, n_boot=n_boot,
                               kinds=kind or (), judge_audit=judge_audit, correct_by=correct_by)  # fmt: skip
        for path in site.reports:
            say(f"report: {path}")
        say(f"html report: {site.index}")

    guard(go)


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out_file: Annotated[
        Path, typer.Option("--out", "-o", help="The bundle file to write (e.g. run.gapeval).")
    ],
) -> None:
    """Pack a run into one file others can score, re-judge and report on without the model.

    It holds the manifest, every output and image, every verdict with its judge id, rubric hash and raw
    reply, and the suite's items and images.
    """
    from gapeval import api

    def go() -> None:
        path = api.export(run_dir, out_file)
        say(f"bundle: {path} ({path.stat().st_size / 2**20:.1f} MiB)")

    guard(go)
