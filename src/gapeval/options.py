"""Adapter, judge and executor options: ``--model-opt KEY=VALUE`` strings onto a settings dataclass."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gapeval.errors import GapevalError


def set_options(settings: Any, options: Mapping[str, str], flag: str, fixed: tuple[str, ...] = ()) -> None:
    """Set a settings dataclass's fields from ``KEY=VALUE`` strings, typed by each field's annotation.

    Raises:
        GapevalError: An unknown (or ``fixed``) key, or a value of the wrong type, naming it.

    """
    kinds = {f.name: str(f.type) for f in dataclasses.fields(settings) if f.name not in fixed}
    for key, value in options.items():
        if key not in kinds:
            raise GapevalError(f"unknown option {key!r}; known: {', '.join(sorted(kinds))}", field=flag)
        kind = kinds[key]
        try:
            if kind.startswith("bool"):
                if value.lower() not in ("1", "true", "yes", "0", "false", "no"):
                    raise ValueError(value)
                setattr(settings, key, value.lower() in ("1", "true", "yes"))
            elif kind.startswith("int"):
                setattr(settings, key, int(value) or (None if "None" in kind else 0))
            elif kind.startswith("float"):
                setattr(settings, key, float(value))
            else:
                setattr(settings, key, value)
        except ValueError as exc:
            raise GapevalError(f"invalid value {value!r}", field=key) from exc
