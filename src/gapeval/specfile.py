"""Reading a YAML spec file into a pydantic model, every failure one error naming the file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError

from gapeval.errors import GapevalError
from gapeval.files import read_text

M = TypeVar("M", bound=BaseModel)
#: A seed in a spec: an integer torch and numpy both take (``true`` or ``1.5`` is a typo, not a seed).
Seed = Annotated[int, Field(strict=True, ge=0, le=2**31 - 1)]
#: A spec is a page of settings; anything larger is not one.
MAX_SPEC_BYTES = 2**20


class _Loader(yaml.SafeLoader):
    """Safe YAML without aliases: a spec never needs them, and nested aliases expand exponentially."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a spec")
        return super().compose_node(parent, index)  # type: ignore[arg-type]


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
    text = read_text(file, MAX_SPEC_BYTES)
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise GapevalError(f"not valid YAML ({problem}{where})", file=file) from None
    except RecursionError:
        raise GapevalError("not valid YAML (nested too deeply)", file=file) from None
    if not isinstance(raw, dict):
        raise GapevalError(f"a {what} is a YAML mapping", file=file)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, file) from exc
