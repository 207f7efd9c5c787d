"""The renderers of :class:`~gapeval.report.tables.Table`: the terminal (rich), Markdown, CSV and HTML.

Each draws every column the table shows, every caveat mark on its cells and every note under it, from
the table alone: a renderer decides how things look, never what is shown.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

from gapeval.report.tables import MISSING, Table, csv_header, csv_values

if TYPE_CHECKING:
    from rich.console import RenderableType


def to_rich(table: Table) -> list[RenderableType]:
    """The table for a terminal, then its legend (dim): data is drawn as text, never as markup."""
    from rich.table import Table as RichTable
    from rich.text import Text

    columns = table.shown(terminal=True)
    out = RichTable(title=table.title, title_justify="left")
    for c in columns:
        out.add_column(c.title, justify="left" if c.text else "right", overflow="fold")
    for row in table.rows:
        if row.section:
            out.add_section()
        out.add_row(*(Text(table.cell(row, c)) for c in columns))
    return [out, *(Text(line, style="dim") for line in table.legend())]


def _md(text: str) -> str:
    """A Markdown table cell: pipes and line breaks would end it."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table, *, heading: str = "##") -> str:
    """The table as a Markdown section: heading, table, legend."""
    columns = table.shown()
    lines = [f"{heading} {table.title}", "", "| " + " | ".join(_md(c.title) for c in columns) + " |"]
    lines.append("|" + "|".join("---" if c.text else "--:" for c in columns) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_md(table.cell(row, c)) for c in columns) + " |")
    legend = table.legend()
    if legend:
        lines += ["", *(f"- {line}" if k else line for k, line in enumerate(legend))]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """The table as CSV: every column (shown or not), unscaled values, and the rows' caveat codes."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_header(table))
    for row in table.rows:
        writer.writerow(csv_values(table, row))
    return buf.getvalue()


def sort_value(table: Table, row: Any, column: Any) -> str:
    """What the HTML table sorts a cell by: the number itself (an interval by its low end), else ''."""
    value = row.values.get(column.key)
    if column.kind == "interval":
        value = value[0] if value else None
    if value is None or column.text:
        return ""
    return repr(float(value))


#: For the HTML templates (``report/templates/_table.html.j2``).
HTML_HELPERS = {"sort_value": sort_value, "MISSING": MISSING}
