"""``gapeval rubrics import-authors``: the authors' judge templates as a rubric directory of one's own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gapeval.cli.shell import JsonOpt, app, guard, print_json, say, tell

rubrics_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="Rubric directories.")
app.add_typer(rubrics_app, name="rubrics")


@rubrics_app.command("import-authors")
def import_authors_cmd(
    repo: Annotated[Path, typer.Argument(help="Your checkout of the authors' repository (GapEval).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Rubric directory to write.")] = Path(
        "authors-rubrics"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Convert the authors' judge templates (their utils/prompt_templates) into a rubric directory.

    Their text is read from your checkout and written to yours; judge with it by
    `gapeval judge RUN -j openai:gpt-5-mini --protocol paper --rubrics DIR`.
    """
    from gapeval import api

    def go() -> None:
        rep = api.import_authors_rubrics(repo, out_dir)
        if as_json:
            print_json({"out": str(rep.out), "written": rep.written, "missing": rep.missing,
                        "commit": rep.commit})  # fmt: skip
            return
        say(f"wrote {len(rep.written)} rubrics to {rep.out}" + (f" (their commit {rep.commit[:12]})"
                                                               if rep.commit else ""))  # fmt: skip
        for name in rep.missing:
            tell(f"their script names {name}, which the checkout lacks: the items it governs are not "
                 "judged (their script errors on them too)")  # fmt: skip
        say(f"judge with: gapeval judge RUN -j openai:gpt-5-mini --protocol paper --rubrics {rep.out}")

    guard(go)
