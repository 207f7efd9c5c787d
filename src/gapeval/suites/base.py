"""A suite: a named, hashed, ordered collection of items."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gapeval.errors import GapevalError
from gapeval.items import Category, Item


class Skipped(BaseModel):
    """An input that was not loaded, and why."""

    model_config = ConfigDict(frozen=True)

    file: str
    field: str | None
    message: str

    def line(self) -> str:
        """One line naming the file and field."""
        return (
            f"{self.file}: field '{self.field}': {self.message}"
            if self.field
            else f"{self.file}: {self.message}"
        )


T = TypeVar("T")


def guarded(load: Callable[[], T], where: str | Path) -> T:
    """Run a loader; anything unexpected it raises becomes one GapevalError naming ``where``.

    A hostile or careless dataset (wrong JSON types, odd encodings, deep nesting) then fails as one line
    naming the file and, where known, the field, and ``--skip-invalid`` skips it instead of aborting.
    """
    try:
        return load()
    except GapevalError:
        raise
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise GapevalError(str(first["msg"]).lower(), file=where, field=field) from exc
    except RecursionError as exc:
        raise GapevalError("nested too deeply", file=where) from exc
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OSError) as exc:
        detail = (str(exc).splitlines() or [""])[0][:160]
        raise GapevalError(f"malformed input ({exc.__class__.__name__}: {detail})", file=where) from exc


@runtime_checkable
class SuiteSource(Protocol):
    """Where a named suite comes from: one class per source, one registry line per name.

    ``load`` receives the suite spec exactly as the user wrote it (so one source can serve several
    names, e.g. ``shapes-v1`` and ``shapes-v1-mini``).
    """

    @classmethod
    def load(cls, spec: str, *, skip_invalid: bool = False) -> Suite:
        """Load the suite (raising GapevalError naming the file and field for bad input)."""
        ...


class Suite(BaseModel):
    """Items plus where they came from.

    Attributes:
        name: Suite name (e.g. ``gapeval`` or ``jsonl:my-suite``).
        version: Version string of the suite definition.
        root: Directory the items were loaded from (empty for generated suites).
        items: The items, in a stable order.
        skipped: Inputs left out under ``skip_invalid``.
        defaults: Run settings the suite defines (e.g. ``samples_gen``), used unless overridden.
        judges: The judge chain that decides this suite, used by ``run`` unless told otherwise.

    """

    model_config = ConfigDict(frozen=True)

    name: str
    version: str = "1"
    root: str = ""
    items: tuple[Item, ...]
    skipped: tuple[Skipped, ...] = ()
    defaults: dict[str, int] = Field(default_factory=dict)
    judges: tuple[str, ...] = ("rules", "openai")

    def content_hash(self) -> str:
        """SHA-256 over the items' content hashes, in order; recorded in every run manifest."""
        h = hashlib.sha256()
        for item in self.items:
            h.update(item.content_hash().encode())
        return h.hexdigest()

    def by_id(self) -> dict[str, Item]:
        """Items keyed by id."""
        return {item.id: item for item in self.items}

    def category_counts(self) -> dict[Category, int]:
        """How many items each category holds."""
        return dict(Counter(item.category for item in self.items))

    @property
    def root_path(self) -> Path:
        """The suite root as a path."""
        return Path(self.root)


def data_home() -> Path:
    """Where fetched data lives: ``$GAPEVAL_HOME`` or ``~/.cache/gapeval``."""
    return Path(os.environ.get("GAPEVAL_HOME", Path.home() / ".cache" / "gapeval"))
