"""Reading the files users hand to gapeval: every way one can be unreadable is one clear line."""

from __future__ import annotations

import json
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
