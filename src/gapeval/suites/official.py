"""The published GapEval benchmark in the authors' folder layout (``data_<n>/prompt.json`` + images).

The layout is a raw file tree whose field names vary across categories; this loader accepts every
variant seen in the public snapshot and turns each folder into an :class:`~gapeval.items.Item`.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

from gapeval.errors import GapevalError
from gapeval.files import read_json
from gapeval.images import contained, first_image, safe_join, verify_image
from gapeval.items import Category, GenerationTask, ImageRef, Item, References, UnderstandingTask
from gapeval.suites.base import Skipped, Suite, guarded

HUB_REPO = "FrancisChen1/GapEval"
#: A prompt.json larger than this is refused unread (the published ones are a few kB).
MAX_PROMPT_BYTES = 4 * 2**20

#: Source category string -> (GapEval category, whether generation edits the question image).
CATEGORY_MAP: dict[str, tuple[Category, bool]] = {
    "multi hop": (Category.WORLD_KNOWLEDGE, False),
    "counting": (Category.NUMERICAL_PERCEPTION, True),
    "rule_based": (Category.INSTRUCTION_FOLLOWING, True),
    "reasoning": (Category.REASONING, True),
    "physics": (Category.REASONING, True),
}
MULTIPLE_CHOICE_SUBCATEGORIES = {"mmlu/mmmu", "puzzle"}
_DATA_DIR = re.compile(r"^data_(\d+)$")
_OPTION = re.compile(
    r"^\s*(?:the\s+)?(?:correct\s+)?(?:answer|option)?\s*(?:is|:)?\s*\(?([A-J])\)?[.):]?\s*$", re.I
)


def _first(record: dict[str, Any], *keys: str) -> tuple[str | None, Any]:
    for key in keys:
        if record.get(key) not in (None, "", []):
            return key, record[key]
    return None, None


def parse_counts(*specs: Any) -> dict[str, int] | None:
    """Counting targets from the authors' ``task``/``explain`` specs, in any of their shapes.

    Accepts ``{"cat": 3}``, ``[{"object": "cat", "number": 3}, ...]`` and strings such as
    ``"3 cats, 2 dogs"``. Returns None when no spec yields a target.
    """
    for spec in specs:
        counts: dict[str, int] = {}
        if isinstance(spec, dict):
            inner = spec.get("objects") or spec.get("targets")
            if isinstance(inner, (list, dict)):
                found = parse_counts(inner)
                if found:
                    return found
            for key, value in spec.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    counts[str(key).strip().lower()] = value
                elif isinstance(value, str) and value.strip().isdigit():
                    counts[str(key).strip().lower()] = int(value)
        elif isinstance(spec, list):
            for entry in spec:
                if isinstance(entry, dict):
                    name = entry.get("object") or entry.get("name") or entry.get("type")
                    number = entry.get("number", entry.get("count"))
                    if name is not None and str(number).strip().isdigit():
                        counts[str(name).strip().lower()] = int(str(number).strip())
        elif isinstance(spec, str):
            for number, name in re.findall(r"(\d+)\s+([A-Za-z][A-Za-z -]*?)(?=,|;|\.|\band\b|$)", spec):
                counts[name.strip().lower()] = int(number)
        if counts:
            return counts
    return None


def parse_choice(text: str | None) -> str | None:
    """The option letter of a multiple-choice reference such as ``B``, ``(B)`` or ``Answer: B``."""
    if not text:
        return None
    match = _OPTION.match(text.strip().splitlines()[0] if text.strip() else "")
    return match.group(1).upper() if match else None


def _reference_text(value: Any) -> tuple[str | None, Any]:
    if value is None:
        return None, None
    if isinstance(value, str):
        return value, None
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return "\n".join(str(v) for v in value), None
    return json.dumps(value, ensure_ascii=False), value


def read_prompt_record(prompt_path: Path) -> dict[str, Any]:
    """Read ``prompt.json``: an object, or a list whose first element is used."""
    if prompt_path.is_symlink() or prompt_path.exists():
        contained(prompt_path, prompt_path.parent, file=prompt_path, field="prompt.json")
    if not prompt_path.exists():
        raise GapevalError("prompt.json is missing", file=prompt_path)
    data = read_json(prompt_path, MAX_PROMPT_BYTES)
    if isinstance(data, list):
        if not data or not isinstance(data[0], dict):
            raise GapevalError("a list prompt.json must start with an object", file=prompt_path, field="[0]")
        data = data[0]
    if not isinstance(data, dict):
        raise GapevalError("must be an object or a list of objects", file=prompt_path)
    return data


def load_item(root: Path, folder: Path) -> Item:
    """Load one ``data_<n>`` folder.

    Raises:
        GapevalError: naming the file and the field at fault.

    """
    prompt_path = folder / "prompt.json"
    rec = read_prompt_record(prompt_path)

    source_category = rec.get("category")
    if not isinstance(source_category, str) or not source_category.strip():
        raise GapevalError("category is missing", file=prompt_path, field="category")
    mapped = CATEGORY_MAP.get(source_category.strip().lower())
    if mapped is None:
        known = ", ".join(sorted(CATEGORY_MAP))
        raise GapevalError(
            f"unknown category {source_category!r} (known: {known})", file=prompt_path, field="category"
        )
    category, edits = mapped
    if rec.get("subcategory") is not None and not isinstance(rec["subcategory"], str):
        raise GapevalError(f"must be a string, not {type(rec['subcategory']).__name__}", file=prompt_path,
                           field="subcategory")  # fmt: skip
    subcategory = str(rec.get("subcategory") or "")

    und_key, und_prompt = _first(rec, "und_prompt", "problem")
    if not isinstance(und_prompt, str) or not und_prompt.strip():
        what = "is empty" if isinstance(und_prompt, str) else "is missing"
        raise GapevalError(f"understanding prompt {what}", file=prompt_path, field=und_key or "und_prompt")
    gen_prompt = rec.get("gen_prompt")
    if not isinstance(gen_prompt, str) or not gen_prompt.strip():
        raise GapevalError("generation prompt is missing", file=prompt_path, field="gen_prompt")

    def image_at(relative: Any, field: str) -> ImageRef:
        if not isinstance(relative, str):
            raise GapevalError("image path must be a string", file=prompt_path, field=field)
        path = safe_join(root, str(Path(folder.name) / relative), file=prompt_path, field=field)
        verify_image(path, file=prompt_path, field=field)
        return ImageRef.from_file(path)

    img_key, img_value = _first(rec, "img", "image", "input_image")
    question: ImageRef | None = None
    if img_key is not None:
        question = image_at(img_value, img_key)
    else:
        for sub in ("image", "inage"):
            found = first_image(contained(folder / sub, root, file=folder / sub, field=sub))
            if found is not None:
                found = contained(found, root, file=found, field=sub)
                verify_image(found, file=found, field=sub)
                question = ImageRef.from_file(found)
                break

    reference_image: ImageRef | None = None
    ref_file = first_image(contained(folder / "ref", root, file=folder / "ref", field="ref"))
    if ref_file is not None:
        ref_file = contained(ref_file, root, file=ref_file, field="ref")
        verify_image(ref_file, file=ref_file, field="ref")
        reference_image = ImageRef.from_file(ref_file)
    elif rec.get("expect_image"):
        reference_image = image_at(rec["expect_image"], "expect_image")

    _, ref_value = _first(rec, "reference", "expect_text", "answer", "gt_prompt")
    ref_text, ref_structured = _reference_text(ref_value)
    counts = (
        parse_counts(rec.get("task"), rec.get("explain"))
        if category is Category.NUMERICAL_PERCEPTION
        else None
    )
    choice = parse_choice(ref_text) if subcategory.lower() in MULTIPLE_CHOICE_SUBCATEGORIES else None
    structured = ref_structured
    if rec.get("task") is not None or rec.get("explain") is not None:
        structured = {"task": rec.get("task"), "explain": rec.get("explain")}

    item_id = _item_id(rec.get("id"), folder, prompt_path)
    return Item(
        id=item_id,
        category=category,
        subcategory=subcategory,
        source_category=source_category,
        und=UnderstandingTask(prompt=und_prompt, images=(question,) if question else ()),
        gen=GenerationTask(prompt=gen_prompt, input_image=question if edits else None),
        refs=References(
            text=ref_text, image=reference_image, choice=choice, counts=counts, structured=structured
        ),
        source=folder.name,
        raw={**rec, "_und_key": und_key},
    )


def find_data_root(path: Path) -> Path:
    """The directory holding the ``data_<n>`` folders: ``path`` itself or a folder up to 3 levels below."""
    candidates = [
        path,
        *sorted(p for p in path.glob("*") if p.is_dir()),
        *sorted(p for p in path.glob("*/*") if p.is_dir()),
        *sorted(p for p in path.glob("*/*/*") if p.is_dir()),
    ]
    for candidate in candidates:
        if any(_DATA_DIR.match(p.name) for p in candidate.iterdir() if p.is_dir()):
            return candidate
    raise GapevalError("no data_<n> folders found", file=path)


def _item_id(value: Any, folder: Path, prompt_path: Path) -> str:
    """The item's id: its ``id`` field (a string or an integer), else the folder's name."""
    if value is None or value == "":
        return folder.name
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise GapevalError(
            f"must be a string or an integer, not {type(value).__name__}", file=prompt_path, field="id"
        )
    text = str(value).strip()
    if not text or len(text) > 200 or any(ord(c) < 32 for c in text):
        raise GapevalError(f"not a usable id: {value!r}", file=prompt_path, field="id")
    return text


def load_official(path: str | Path, *, skip_invalid: bool = False, name: str = "gapeval") -> Suite:
    """Load the published benchmark from a directory in the authors' layout.

    Args:
        path: The snapshot directory (or any folder above the ``data_<n>`` folders).
        skip_invalid: Load the good items and list the bad ones instead of stopping at the first.
        name: Suite name to record.

    Raises:
        GapevalError: On the first bad item unless ``skip_invalid``; always on duplicate ids.

    """
    root_in = Path(path)
    if not root_in.is_dir():
        raise GapevalError("dataset directory does not exist", file=root_in)
    root = find_data_root(root_in).resolve()
    numbered = [(m, p) for p in root.iterdir() if p.is_dir() and (m := _DATA_DIR.match(p.name))]
    folders = [p for m, p in sorted(numbered, key=lambda mp: int(mp[0].group(1)))]
    items: list[Item] = []
    skipped: list[Skipped] = []
    seen: dict[str, Path] = {}
    for folder in folders:
        try:
            contained(folder, root, file=folder, field="data folder")
            item = guarded(partial(load_item, root, folder), folder / "prompt.json")
            if item.id in seen:
                raise GapevalError(
                    f"duplicate id {item.id!r} (also in {seen[item.id]})",
                    file=folder / "prompt.json",
                    field="id",
                )
        except GapevalError as err:
            if not skip_invalid:
                raise
            skipped.append(Skipped(file=err.file or str(folder), field=err.field, message=err.message))
            continue
        seen[item.id] = folder / "prompt.json"
        items.append(item)
    if not items:
        raise GapevalError("no loadable items", file=root)
    return Suite(name=name, version="snapshot", root=str(root), items=tuple(items), skipped=tuple(skipped))


def fetch(cache_dir: str | Path | None = None, revision: str | None = None) -> Path:
    """Download the public snapshot from the Hugging Face hub (needs network and ``gapeval[hub]``).

    Returns:
        The local snapshot directory.

    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise GapevalError("fetching needs the hub extra: pip install 'gapeval[hub]'") from exc
    local = snapshot_download(repo_id=HUB_REPO, repo_type="dataset", cache_dir=cache_dir, revision=revision)
    return Path(local)


class FetchedSource:
    """The registry's source for ``gapeval``: the public snapshot fetched into the data home."""

    @classmethod
    def load(cls, spec: str, *, skip_invalid: bool = False) -> Suite:
        """Load the fetched snapshot (``gapeval fetch gapeval`` first)."""
        from gapeval.suites.base import data_home

        local = data_home() / "gapeval"
        if not local.is_dir():
            raise GapevalError(
                "the GapEval snapshot is not fetched yet; run: gapeval fetch gapeval", file=local
            )
        return load_official(local, skip_invalid=skip_invalid, name="gapeval")
