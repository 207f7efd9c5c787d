"""Our own plain format for user-made suites: one JSON object per line plus an image folder.

Each line::

    {"id": "q1", "category": "Reasoning", "subcategory": "puzzle",
     "und": {"prompt": "Which option ...?", "images": ["img/q1.png"]},
     "gen": {"prompt": "Circle the right option", "input_image": "img/q1.png"},
     "refs": {"text": "B", "choice": "B", "image": "img/q1_ref.png", "counts": {"cat": 3}}}

Image paths are relative to the JSONL file's folder and may not leave it. ``category`` is one of the
four GapEval names or one of the authors' source strings (``counting``, ``Multi Hop``...).

An optional sidecar with the same stem (``suite.json`` beside ``suite.jsonl``) names the suite and sets
what a run takes from it unless told otherwise: ``{"name": ..., "version": ..., "defaults":
{"samples_gen": 3}, "judges": ["scene"]}``.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gapeval.errors import GapevalError
from gapeval.images import safe_join, verify_image
from gapeval.items import Category, GenerationTask, ImageRef, Item, References, UnderstandingTask
from gapeval.specfile import validation_error
from gapeval.suites.base import Skipped, Suite, guarded
from gapeval.suites.official import CATEGORY_MAP


class SuiteMeta(BaseModel):
    """The optional sidecar of a JSONL suite.

    Attributes:
        name: The suite's name in manifests and tables (default ``jsonl:STEM``).
        version: The suite's version string.
        defaults: Run settings the suite defines: ``samples_und``, ``samples_gen`` (at least 1 each).
        judges: The judge chain that decides the suite (default: rules, then the VLM judge).

    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    version: str = "1"
    defaults: dict[str, int] = Field(default_factory=dict)
    judges: tuple[str, ...] = ("rules", "openai")


def _meta(file: Path) -> SuiteMeta:
    side = file.with_suffix(".json")
    if not side.is_file():
        return SuiteMeta()
    try:
        meta = SuiteMeta.model_validate_json(side.read_bytes())
    except ValidationError as exc:
        raise validation_error(exc, side) from exc
    for key, value in meta.defaults.items():
        if key not in ("samples_und", "samples_gen") or value < 1:
            raise GapevalError(
                "samples_und and samples_gen only, each at least 1", file=side, field=f"defaults.{key}"
            )
    return meta


def _category(value: Any, *, file: str, field: str) -> Category:
    if isinstance(value, str):
        for cat in Category:
            if value.strip().lower() == cat.value.lower():
                return cat
        mapped = CATEGORY_MAP.get(value.strip().lower())
        if mapped:
            return mapped[0]
    raise GapevalError(f"unknown category {value!r}", file=file, field=field)


def _line_item(root: Path, rec: Any, where: str) -> Item:
    if not isinstance(rec, dict):
        raise GapevalError("each line must be a JSON object", file=where)

    def image(rel: Any, field: str) -> ImageRef:
        if not isinstance(rel, str):
            raise GapevalError("image path must be a string", file=where, field=field)
        path = safe_join(root, rel, file=Path(where), field=field)
        verify_image(path, file=Path(where), field=field)
        return ImageRef.from_file(path)

    if isinstance(rec.get("id"), bool) or not isinstance(rec.get("id"), (str, int)) or rec.get("id") == "":
        raise GapevalError("id is missing (a string or an integer)", file=where, field="id")
    parts = {}
    for key in ("und", "gen", "refs"):
        value = rec.get(key)
        if value is not None and not isinstance(value, dict):
            raise GapevalError(f"must be an object, not {type(value).__name__}", file=where, field=key)
        parts[key] = value or {}
    und, gen, refs = parts["und"], parts["gen"], parts["refs"]
    for key in ("text", "choice", "image"):
        if refs.get(key) is not None and not isinstance(refs[key], str):
            raise GapevalError(
                f"must be a string, not {type(refs[key]).__name__}", file=where, field=f"refs.{key}"
            )
    if gen.get("input_image") is not None and not isinstance(gen["input_image"], str):
        raise GapevalError("must be a string", file=where, field="gen.input_image")
    images = und.get("images") or []
    if not isinstance(images, list):
        raise GapevalError("must be a list of image paths", file=where, field="und.images")
    if rec.get("subcategory") is not None and not isinstance(rec["subcategory"], str):
        raise GapevalError("must be a string", file=where, field="subcategory")
    if not isinstance(und.get("prompt"), str) or not und["prompt"].strip():
        raise GapevalError("understanding prompt is missing", file=where, field="und.prompt")
    if not isinstance(gen.get("prompt"), str) or not gen["prompt"].strip():
        raise GapevalError("generation prompt is missing", file=where, field="gen.prompt")
    counts = refs.get("counts")
    if counts is not None and not (
        isinstance(counts, dict) and all(isinstance(v, int) for v in counts.values())
    ):
        raise GapevalError("counts must map object names to integers", file=where, field="refs.counts")
    return Item(
        id=str(rec["id"]),
        category=_category(rec.get("category"), file=where, field="category"),
        subcategory=str(rec.get("subcategory") or ""),
        source_category=str(rec.get("category")),
        und=UnderstandingTask(
            prompt=und["prompt"],
            images=tuple(image(p, f"und.images[{i}]") for i, p in enumerate(images)),
        ),
        gen=GenerationTask(
            prompt=gen["prompt"],
            input_image=image(gen["input_image"], "gen.input_image") if gen.get("input_image") else None,
        ),
        refs=References(
            text=refs.get("text"),
            choice=refs.get("choice"),
            counts={str(k).lower(): v for k, v in counts.items()} if counts else None,
            image=image(refs["image"], "refs.image") if refs.get("image") else None,
            structured=refs.get("structured"),
        ),
        raw=rec,
    )


def load_jsonl(path: str | Path, *, skip_invalid: bool = False, name: str | None = None) -> Suite:
    """Load a JSONL suite (a ``.jsonl`` file, or a folder holding ``suite.jsonl``).

    Raises:
        GapevalError: naming the file, line and field of the first bad line (unless ``skip_invalid``).

    """
    file = Path(path)
    if file.is_dir():
        file = file / "suite.jsonl"
    if not file.is_file():
        raise GapevalError("suite file does not exist", file=file)
    root = file.parent.resolve()
    items: list[Item] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    try:
        raw_lines = file.read_bytes().splitlines()
    except OSError as exc:
        raise GapevalError(f"cannot read ({exc.strerror})", file=file) from exc
    for lineno, raw in enumerate(raw_lines, start=1):
        where = f"{file}:{lineno}"
        try:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise GapevalError(f"not UTF-8 (byte {exc.start})", file=where) from exc
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise GapevalError(f"not valid JSON ({exc.msg})", file=where) from exc
            except RecursionError as exc:
                raise GapevalError("JSON nested too deeply", file=where) from exc
            item = guarded(partial(_line_item, root, rec, where), where)
            if item.id in seen:
                raise GapevalError(f"duplicate id {item.id!r}", file=where, field="id")
        except GapevalError as err:
            if not skip_invalid:
                raise
            skipped.append(Skipped(file=err.file or where, field=err.field, message=err.message))
            continue
        seen.add(item.id)
        items.append(item)
    if not items:
        raise GapevalError("no loadable items", file=file)
    meta = _meta(file)
    return Suite(
        name=name or meta.name or f"jsonl:{file.stem}",
        version=meta.version,
        root=str(root),
        items=tuple(items),
        skipped=tuple(skipped),
        defaults=meta.defaults,
        judges=meta.judges,
    )
