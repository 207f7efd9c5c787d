"""Errors that reach users as one clear line naming the file and the field."""

from __future__ import annotations

from pathlib import Path


class GapevalError(Exception):
    """A user-facing error: bad input, a bad spec, or a run directory in the wrong state.

    Args:
        message: What is wrong, in words a user can act on.
        file: The file (or directory) at fault, when there is one.
        field: The field inside that file, when there is one.

    """

    def __init__(self, message: str, *, file: str | Path | None = None, field: str | None = None) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.field = field
        super().__init__(self.line())

    def line(self) -> str:
        """The error as one line: ``FILE: field 'FIELD': MESSAGE``."""
        parts = []
        if self.file:
            parts.append(self.file)
        if self.field:
            parts.append(f"field '{self.field}'")
        parts.append(self.message)
        return ": ".join(parts)
