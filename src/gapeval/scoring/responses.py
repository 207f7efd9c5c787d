"""The response tensor Y[model, question, direction] from run directories, and its tidy CSV form.

Each cell is the share of the item-direction's judged samples that passed (0/1 with one sample);
failed, unsupported or undecided outputs are missing (NaN), never wrong.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gapeval.errors import GapevalError
from gapeval.files import output_file, read_table
from gapeval.items import Direction
from gapeval.records import RunRecords
from gapeval.scoring.joint import item_scores
from gapeval.scoring.mirt import Responses

FIELDS = ("model", "item", "category", "direction", "y")


def from_records(
    runs: Sequence[RunRecords],
    judges: Sequence[str] | None = None,
    *,
    names: Sequence[str] | None = None,
    unsupported_as_wrong: bool = False,
    orders: Sequence[Sequence[str]] | None = None,
) -> Responses:
    """Stack runs (one model each) into a response tensor over the union of their questions.

    Args:
        runs: The runs' records.
        judges: Judge ids by precedence (default: each run's last judging chain).
        names: Model names (default: display names, made unique with the run folder's name).
        unsupported_as_wrong: Count unsupported outputs as wrong instead of missing.
        orders: Judge ids per run (given ids may resolve differently in each run), instead of ``judges``.

    """
    labels = list(names) if names is not None else unique_names(runs)
    tables: list[dict[tuple[str, Direction], float]] = []
    cats: dict[str, str] = {}
    for k, rec in enumerate(runs):
        if orders is not None:
            order = list(orders[k])
        else:
            order = list(judges) if judges else list(rec.manifest.judge_chain)
        tables.append(item_scores(rec, order, unsupported_as_wrong=unsupported_as_wrong))
        for item_id, (cat, _) in rec.items.items():
            cats.setdefault(item_id, cat.value)
    items = sorted(cats)
    y = np.full((len(labels), len(items), 2), np.nan)
    index = {i: k for k, i in enumerate(items)}
    for m, table in enumerate(tables):
        for (item, direction), score in table.items():
            if item in index:
                y[m, index[item], 0 if direction is Direction.UND else 1] = score
    return Responses(labels, items, y, [cats[i] for i in items])


def unique_names(runs: Sequence[RunRecords]) -> list[str]:
    """Display names, with the run folder's name added where two runs would share one."""
    base = [r.manifest.display_name for r in runs]
    return [
        name if base.count(name) == 1 else f"{name} ({Path(r.path).name})"
        for name, r in zip(base, runs, strict=True)
    ]


def write_csv(data: Responses, path: str | Path) -> Path:
    """Tidy CSV: one row per observed (model, item, direction)."""
    out = output_file(path, "--export")
    if out.exists():
        try:
            first = out.read_text(encoding="utf-8").split("\n", 1)[0].strip()
        except (OSError, UnicodeDecodeError):
            first = ""
        if first != ",".join(FIELDS):
            raise GapevalError("exists and is not a response CSV; refusing to write over it", file=out)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FIELDS)
        for m, model in enumerate(data.models):
            for j, item in enumerate(data.items):
                for d, direction in enumerate(("und", "gen")):
                    v = data.y[m, j, d]
                    if not math.isnan(v):
                        writer.writerow([model, item, data.categories[j], direction, repr(float(v))])
    return out


def read_csv(path: str | Path) -> Responses:
    """Read the tidy CSV (columns model, item, category, direction, y; direction und/gen; y in [0, 1]).

    Raises:
        GapevalError: naming the file, line and field at fault.

    """
    src = Path(path)
    _, table = read_table(src, FIELDS)
    rows = []
    seen: dict[tuple[str, str, str], str] = {}
    for row in table:
        direction = row.choice("direction", {"und": "und", "gen": "gen"})
        y = row.number("y", low=0.0, high=1.0)
        key = (row.text("model"), row.text("item"), direction)
        if key in seen:
            raise GapevalError(f"{key[0]} / {key[1]} / {direction} is also on {seen[key]}; one response "
                               "each (average samples first)", file=row.where, field="item")  # fmt: skip
        seen[key] = row.where.rsplit(":", 1)[1]
        rows.append((*key[:2], row.text("category"), direction, float(y or 0.0)))
    if not rows:
        raise GapevalError("no responses", file=src)
    models = list(dict.fromkeys(r[0] for r in rows))
    items = sorted({r[1] for r in rows})
    cats: dict[str, str] = {}
    for _, item, cat, _, _ in rows:
        if cats.setdefault(item, cat) != cat:
            raise GapevalError(
                f"item {item!r} has two categories ({cats[item]!r}, {cat!r})", file=src, field="category"
            )
    y_arr = np.full((len(models), len(items), 2), np.nan)
    mi, ii = {m: k for k, m in enumerate(models)}, {i: k for k, i in enumerate(items)}
    for model, item, _, direction, v in rows:
        y_arr[mi[model], ii[item], 0 if direction == "und" else 1] = v
    return Responses(models, items, y_arr, [cats[i] for i in items])
