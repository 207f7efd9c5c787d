"""Reading a YAML spec file into a pydantic model, every failure one error naming the file and field."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gapeval.errors import GapevalError

M = TypeVar("M", bound=BaseModel)


def validation_error(exc: ValidationError, file: str | Path) -> GapevalError:
    """The first problem pydantic found, as one line naming the file and the field's dotted path."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    msg = str(first["msg"]).removeprefix("Value error, ")
    return GapevalError(msg[:1].lower() + msg[1:], file=file, field=field)


def load_spec_file(path: str | Path, model: type[M], what: str = "spec") -> M:
    """Read YAML (JSON is YAML too) from ``path`` and validate it as ``model``.

    Raises:
        GapevalError: The file is unreadable, not YAML, not a mapping, or invalid (naming the field).

    """
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GapevalError(f"cannot read ({exc.strerror})", file=file) from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise GapevalError(f"not valid YAML ({str(exc).splitlines()[0]})", file=file) from exc
    if not isinstance(raw, dict):
        raise GapevalError(f"a {what} is a YAML mapping", file=file)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, file) from exc
