"""One table model per result: `run` and `report` agree, one CSV schema, and caveats in every renderer."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import invoke
from gapeval.report.tables import MIRT_CAVEATS, REFERENCE_CAVEATS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_adapter.py"
QUICK = ("--fragility", "2", "--boot", "20")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The built-in model, and a model that answers nothing right and draws a blank canvas."""
    from typer.testing import CliRunner

    cli, root = CliRunner(), tmp_path_factory.mktemp("tables")
    good, none = root / "good", root / "none"
    code, _, err = invoke(cli, "run", "shapes-v1-mini", "-m", "toy", "-o", str(good), *QUICK)
    assert code == 0, err
    code, _, err = invoke(cli, "run", "shapes-v1-mini", "-m", f"py:{EXAMPLE}:MyModel", "--model-opt",
                          "answer=nothing", "-o", str(none), "--label", "nothing", *QUICK)  # fmt: skip
    assert code == 0, err
    return cli, root, good, none


def _section(html: str) -> str:
    """The scores section of a report page (the tables, their legends and the notes)."""
    return html[html.index('<section id="leaderboard">') : html.index('<section id="charts">')]


def test_run_and_report_write_the_same_tables_and_figures(runs) -> None:
    cli, root, good, _ = runs
    code, _, err = invoke(cli, "report", str(good), "-o", str(root / "again"), *QUICK)
    assert code == 0, err
    by_run, by_report = good / "report", root / "again"
    names = sorted(p.name for p in (by_run / "tables").iterdir())
    assert names == ["leaderboard.csv", "mirt_gap.csv"]  # run now fits the MIRT gap too
    assert names == sorted(p.name for p in (by_report / "tables").iterdir())
    for name in names:
        assert (by_run / "tables" / name).read_text() == (by_report / "tables" / name).read_text(), name
    figures = sorted(p.name for p in (by_run / "figures").iterdir())
    assert figures == sorted(p.name for p in (by_report / "figures").iterdir())
    assert {"abilities.svg", "abilities.png"} <= set(figures)
    assert _section((by_run / "index.html").read_text()) == _section((by_report / "index.html").read_text())
    assert (by_run / "summary.md").read_text() == (by_report / "summary.md").read_text()


def test_score_csv_is_the_reports_csv(runs) -> None:
    cli, _, good, _ = runs
    code, out, err = invoke(cli, "score", str(good), "--method", "reference", "-f", "csv", "--fragility", "2")
    assert code == 0, err
    assert out == (good / "report" / "tables" / "leaderboard.csv").read_text()
    header = next(csv.reader(io.StringIO(out)))
    assert header[:3] == ["model", "category", "n_paired"] and header[-1] == "caveats"
    assert {"p_both", "p_und_only", "p_gen_only", "p_neither", "gap", "gap_fragility"} <= set(header)
    code, out, err = invoke(cli, "score", str(good), "-f", "csv", "--boot", "20")
    assert code == 0, err
    assert out == (good / "report" / "tables" / "mirt_gap.csv").read_text()


class _Cells(HTMLParser):
    """Rows of one HTML table: per row, the cells' text and whether each carries a caveat mark."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.rows = table_id, False, []
        self.cell: list[str] | None = None
        self.caveat = False

    def handle_starttag(self, tag, attrs) -> None:
        a = dict(attrs)
        if tag == "table":
            self.inside = a.get("id") == self.table_id
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell, self.caveat = [], a.get("class") == "caveat"

    def handle_endtag(self, tag) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(("".join(self.cell).strip(), self.caveat))
            self.cell = None

    def handle_data(self, data) -> None:
        if self.cell is not None:
            self.cell.append(data)


def _html_marks(page: str, table_id: str, column: str) -> dict[tuple[str, str], str]:
    parser = _Cells(table_id)
    parser.feed(page)
    head, *body = parser.rows
    col = [t for t, _ in head].index(column)
    return {(r[0][0], r[1][0]): r[col][0] for r in body}


def _md_marks(text: str, title: str, column: str) -> dict[tuple[str, str], str]:
    block = text[text.index(f"## {title}") :].split("\n\n")[1].splitlines()
    head = [c.strip() for c in block[0].strip("|").split("|")]
    col = head.index(column)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block[2:]]
    return {(r[0], r[1]): r[col] for r in rows}


def _terminal_marks(out: str, column: str, first: str) -> dict[tuple[str, str], str]:
    """Rows of the rich table whose heading starts with ``first`` and holds ``column``."""
    lines = out.splitlines()

    def heads(line: str) -> list[str]:
        return [c.strip() for c in line.split("┃")[1:-1]]

    start = next(k for k, line in enumerate(lines) if line.startswith("┃") and heads(line)[0] == first
                 and column in heads(line))  # fmt: skip
    col = heads(lines[start]).index(column)
    found = {}
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            cells = [c.strip() for c in line.split("│")[1:-1]]
            found[(cells[0], cells[1])] = cells[col]
    return found


def _marked(cells: dict[tuple[str, str], str]) -> set[tuple[str, str]]:
    return {k for k, v in cells.items() if v.endswith(("*", "†"))}


def test_a_gap_set_by_the_bounds_carries_its_mark_and_note_in_every_renderer(runs) -> None:
    cli, root, good, none = runs
    site = root / "both"
    code, out, err = invoke(cli, "report", str(none), str(good), "-o", str(site), "-k", "markdown", *QUICK)
    assert code == 0, err
    with (site / "tables" / "leaderboard.csv").open() as fh:
        board = list(csv.DictReader(fh))
    with (site / "tables" / "mirt_gap.csv").open() as fh:
        mirt = list(csv.DictReader(fh))
    nothing = next(r for r in board if r["model"] == "nothing" and r["category"] == "Overall")
    # Wrong both ways: both shares of a right answer are 0, so the fit's bounds set the Gap.
    assert float(nothing["und"]) == 0 and float(nothing["gen"]) == 0
    assert nothing["caveats"].split(";")[0] == "boundary"
    assert (
        next(r for r in mirt if r["model"] == "nothing" and r["group"] == "Overall")["caveats"] == "boundary"
    )
    csv_board = {(r["model"], r["category"]) for r in board if r["caveats"]}
    csv_mirt = {(r["model"], r["group"]) for r in mirt if r["caveats"]}
    assert ("nothing", "Overall") in csv_board and ("nothing", "Overall") in csv_mirt

    page = (site / "index.html").read_text()
    assert _marked(_html_marks(page, "t-leaderboard", "Gap")) == csv_board
    assert _marked(_html_marks(page, "t-mirt_gap", "gap")) == csv_mirt
    text = html.unescape(" ".join(re.sub(r"<[^>]+>", " ", page).split()))
    assert (
        f"*: {REFERENCE_CAVEATS['boundary'].note}" in text and f"*: {MIRT_CAVEATS['boundary'].note}" in text
    )

    code, out, err = invoke(cli, "score", str(none), str(good), "--method", "both", *QUICK)
    assert code == 0, err
    assert _marked(_terminal_marks(out, "Gap", "model")) == csv_board
    assert _marked(_terminal_marks(out, "gap", "model")) == csv_mirt
    flat = " ".join(out.split())
    assert (
        f"*: {REFERENCE_CAVEATS['boundary'].note}" in flat and f"*: {MIRT_CAVEATS['boundary'].note}" in flat
    )

    summary = (site / "summary.md").read_text()
    assert _marked(_md_marks(summary, "Summary", "Gap")) == {k for k in csv_board if k[1] == "Overall"}
    assert f"*: {REFERENCE_CAVEATS['boundary'].note}" in summary
    own = (none / "report.md").read_text()  # the per-run report scores the run alone
    alone = json.loads((none / "report.json").read_text())["leaderboard"][-1]
    assert alone["category"] == "Overall" and alone["caveats"][0] == "boundary"
    marks = "".join({"boundary": "*", "fragile": "†"}[c] for c in alone["caveats"])
    assert _md_marks(own, "Leaderboard", "Gap")[("nothing", "Overall")] == f"{alone['gap']:.1f}{marks}"
    assert ("nothing", "Overall") in _marked(_md_marks(own, "Identified gap (paired-question MIRT)", "gap"))
    assert f"*: {MIRT_CAVEATS['boundary'].note}" in own
