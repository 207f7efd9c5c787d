"""Reading the files users hand to gapeval: every way one can be unreadable is one clear line."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gapeval.errors import GapevalError

#: Input files larger than this are refused unread (response tensors of 50 models x 646 items are ~3 MB).
MAX_INPUT_BYTES = 512 * 2**20


def read_text(path: str | Path, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """A UTF-8 text file's contents (a BOM is allowed), refused unread past ``max_bytes``.

    Raises:
        GapevalError: Missing, a folder, unreadable, too large, or not UTF-8, naming the file.

    """
    file = Path(path)
    try:
        if file.is_dir():
            raise GapevalError("is a folder, not a file", file=file)
        if file.exists() and not file.is_file():  # a pipe or a device: reading could block forever
            raise GapevalError("is not a regular file", file=file)
        if file.stat().st_size > max_bytes:
            raise GapevalError(f"larger than {max_bytes // 2**20} MiB", file=file)
        data = file.read_bytes()
    except OSError as exc:
        raise GapevalError(f"cannot read ({exc.strerror or exc.__class__.__name__})", file=file) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GapevalError(f"not UTF-8 text (byte {exc.start})", file=file) from exc


def read_json(path: str | Path, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    """A JSON file's value.

    Raises:
        GapevalError: As :func:`read_text`, or not valid JSON, or nested too deeply.

    """
    text = read_text(path, max_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GapevalError(f"not valid JSON ({exc.msg}, line {exc.lineno})", file=path) from exc
    except RecursionError as exc:
        raise GapevalError("JSON nested too deeply", file=path) from exc


#: Largest single CSV field (characters): an item id or a model name is short; a larger field is damage.
MAX_CSV_FIELD = 64 * 2**10


class CsvRow:
    """One data row of a CSV read by :func:`read_table`: its values by column, and where it came from.

    Every accessor refuses a bad value with one line naming the file, the line and the column.

    Attributes:
        where: ``FILE:LINE``, for errors about this row.
        values: The row's fields by column name (exactly the header's columns).

    """

    def __init__(self, where: str, values: dict[str, str]) -> None:
        self.where = where
        self.values = values

    def text(self, column: str, *, required: bool = True) -> str:
        """The stripped text of ``column`` (refused when empty and ``required``)."""
        value = self.values.get(column, "").strip()
        if required and not value:
            raise GapevalError("is empty", file=self.where, field=column)
        return value

    def choice(self, column: str, options: dict[str, Any]) -> Any:
        """``options[value]`` for the lower-cased value of ``column``, refusing anything else."""
        value = self.text(column).lower()
        if value not in options:
            allowed = ", ".join(dict.fromkeys(str(k) for k in options))
            raise GapevalError(f"must be one of {allowed}, not {self.values[column]!r}",
                               file=self.where, field=column)  # fmt: skip
        return options[value]

    def number(
        self, column: str, *, low: float | None = None, high: float | None = None, required: bool = True
    ) -> float | None:
        """``column`` as a finite number within [``low``, ``high``] (None when empty and not required)."""
        raw = self.text(column, required=required)
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise GapevalError(f"not a number: {raw!r}", file=self.where, field=column) from None
        if not math.isfinite(value):
            raise GapevalError(f"not a finite number: {raw!r}", file=self.where, field=column)
        if (low is not None and value < low) or (high is not None and value > high):
            raise GapevalError(f"must lie in [{low}, {high}], not {raw}", file=self.where, field=column)
        return value


def read_table(
    path: str | Path, required: Sequence[str], *, max_bytes: int = MAX_INPUT_BYTES, min_rows: int = 1
) -> tuple[list[str], list[CsvRow]]:
    """Read a CSV with a header row: the one reader of every tabular input (responses, labels, scores).

    Refused, in one line naming the file (and the line and column where there is one): a file that is
    missing, too large or not UTF-8 (:func:`read_text`), a NUL byte, malformed quoting, a field larger
    than :data:`MAX_CSV_FIELD`, no header, an empty or repeated column name, a missing required column,
    a row shorter or longer than the header, and fewer than ``min_rows`` data rows. Blank lines are
    skipped.

    Args:
        path: The CSV file.
        required: Columns the header must hold.
        max_bytes: Size cap of the whole file.
        min_rows: Fewest data rows accepted.

    Returns:
        The header's columns, and the data rows.

    Raises:
        GapevalError: As above.

    """
    src = Path(path)
    text = read_text(src, max_bytes)
    nul = text.find("\0")
    if nul >= 0:
        raise GapevalError(
            "holds a NUL byte: not a text CSV", file=f"{src}:{text.count(chr(10), 0, nul) + 1}"
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[CsvRow] = []
    header: list[str] | None = None
    try:
        for fields in reader:
            where = f"{src}:{reader.line_num}"
            if any(len(f) > MAX_CSV_FIELD for f in fields):
                raise GapevalError(f"a field is longer than {MAX_CSV_FIELD} characters", file=where)
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if header is None:
                header = [f.strip() for f in fields]
                for k, name in enumerate(header, 1):
                    if not name:
                        raise GapevalError(f"column {k} of the header has no name", file=where)
                    if header.count(name) > 1:
                        raise GapevalError("appears twice in the header", file=where, field=name)
                missing = [c for c in required if c not in header]
                if missing:
                    raise GapevalError(f"missing column(s) {', '.join(missing)}", file=where,
                                       field=missing[0])  # fmt: skip
                continue
            if len(fields) != len(header):
                side = "fewer" if len(fields) < len(header) else "more"
                raise GapevalError(
                    f"has {len(fields)} fields, {side} than the header's {len(header)}", file=where
                )
            rows.append(CsvRow(where, dict(zip(header, fields, strict=True))))
    except csv.Error as exc:
        raise GapevalError(f"malformed CSV ({exc})", file=f"{src}:{reader.line_num}") from None
    if header is None:
        raise GapevalError("is empty: no header row", file=src)
    if len(rows) < min_rows:
        raise GapevalError(f"has {len(rows)} data rows; needs at least {min_rows}", file=src)
    return header, rows


def _no_file_above(path: Path, field: str) -> None:
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                what = f"{parent} is a file, so nothing can be made under it; pick another {field}"
                raise GapevalError(what, file=path, field=field)
            return


def output_folder(path: str | Path, field: str = "--out") -> Path:
    """Make (or reuse) the folder a command writes into, relative or absolute.

    Raises:
        GapevalError: ``path`` or a folder above it is a file, or the folder cannot be made, naming it.

    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise GapevalError(f"exists and is not a folder; pick another {field}", file=folder, field=field)
    _no_file_above(folder, field)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise GapevalError(f"cannot make the folder ({why})", file=folder, field=field) from None
    return folder


def output_file(path: str | Path, field: str = "--out") -> Path:
    """Check that a command can write the file ``path`` (its folder is made when missing).

    Raises:
        GapevalError: ``path`` is a folder, or a folder above it is a file or cannot be made, naming it.

    """
    file = Path(path)
    if file.is_dir():
        raise GapevalError(f"is a folder; name a file for {field}", file=file, field=field)
    output_folder(file.parent, field)
    return file
