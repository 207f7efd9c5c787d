"""Malformed and hostile datasets, one per case, for fault-injection tests of the loaders.

Each case writes one good item and one bad one into a fresh folder, in the authors' layout
(:data:`TREE_CASES`) or as a JSONL suite (:data:`JSONL_CASES`); ``outside`` is a folder beside the
dataset that holds a file a link may point at. A loader must refuse every bad item with one line naming
the file (and the field, where there is one), and skip it under ``--skip-invalid``.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

GOOD_PROMPT = {"category": "counting", "und_prompt": "How many?", "gen_prompt": "Draw three."}


def png(path: Path, size: tuple[int, int] = (16, 16), colour: str = "white") -> Path:
    """A small valid PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` pixels while its data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )
    return path


def _item(root: Path, name: str, prompt: object | bytes, files: dict[str, Path] | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(prompt, bytes):
        (folder / "prompt.json").write_bytes(prompt)
    elif prompt is not None:
        (folder / "prompt.json").write_text(json.dumps(prompt))
    return folder


TreeCase = Callable[[Path, Path], None]


def _with(**fields: object) -> TreeCase:
    return lambda root, outside: (_item(root, "data_2", {**GOOD_PROMPT, **fields}), None)[1]


def _symlinked_image(root: Path, outside: Path) -> None:
    folder = _item(root, "data_2", GOOD_PROMPT)
    (folder / "image").mkdir()
    os.symlink(png(outside / "secret.png"), folder / "image" / "a.png")


def _symlinked_ref(root: Path, outside: Path) -> None:
    folder = _item(root, "data_2", GOOD_PROMPT)
    png(outside / "refs" / "r.png")
    os.symlink(outside / "refs", folder / "ref")


def _symlinked_folder(root: Path, outside: Path) -> None:
    target = _item(outside, "elsewhere", GOOD_PROMPT)
    os.symlink(target, root / "data_2")


def _symlinked_prompt(root: Path, outside: Path) -> None:
    folder = root / "data_2"
    folder.mkdir()
    (outside / "p.json").write_text(json.dumps(GOOD_PROMPT))
    os.symlink(outside / "p.json", folder / "prompt.json")


def _prompt_dir(root: Path, outside: Path) -> None:
    (root / "data_2" / "prompt.json").mkdir(parents=True)


def _truncated_image(root: Path, outside: Path) -> None:
    folder = _item(root, "data_2", {**GOOD_PROMPT, "img": "q.png"})
    data = png(folder / "q.png", (64, 64), "red").read_bytes()
    (folder / "q.png").write_bytes(data[: len(data) // 2])


def _bomb(root: Path, outside: Path) -> None:
    folder = _item(root, "data_2", {**GOOD_PROMPT, "img": "q.png"})
    png_claiming(folder / "q.png", 12_000, 12_000)  # 144 megapixels claimed


#: name -> writes the bad item ``data_2`` beside the good ``data_1``.
TREE_CASES: dict[str, TreeCase] = {
    "prompt is a directory": _prompt_dir,
    "prompt not UTF-8": lambda root, outside: (_item(root, "data_2", b'{"category": "\xff\xfe"}'), None)[1],
    "prompt nested deeply": lambda root, outside: (_item(root, "data_2", b"[" * 100_000), None)[1],
    "prompt is a string": lambda root, outside: (_item(root, "data_2", "hello"), None)[1],
    "prompt is an empty list": lambda root, outside: (_item(root, "data_2", []), None)[1],
    "category is an object": _with(category={"a": 1}),
    "und_prompt is a number": _with(und_prompt=3),
    "gen_prompt is a list": _with(gen_prompt=["draw"]),
    "img is a list": _with(img=["a.png"]),
    "img holds a NUL byte": _with(img="a\u0000.png"),
    "img escapes the root": _with(img="../../../etc/passwd"),
    "image/ holds a link outside": _symlinked_image,
    "ref/ is a link outside": _symlinked_ref,
    "data folder is a link outside": _symlinked_folder,
    "prompt.json is a link outside": _symlinked_prompt,
    "truncated image": _truncated_image,
    "decompression bomb": _bomb,
}


def write_tree(case: str, base: Path) -> tuple[Path, Path]:
    """The dataset of one tree case under ``base``; returns (dataset root, the outside folder)."""
    root, outside = base / "dataset", base / "outside"
    root.mkdir(parents=True)
    outside.mkdir(parents=True)
    _item(root, "data_1", GOOD_PROMPT)
    TREE_CASES[case](root, outside)
    return root, outside


GOOD_LINE = {"id": "ok", "category": "Reasoning", "und": {"prompt": "u"}, "gen": {"prompt": "g"}}

#: name -> the bad line of a JSONL suite (bytes, or a JSON value) placed after one good line.
JSONL_CASES: dict[str, object] = {
    "not JSON": b"{not json",
    "not UTF-8": b'{"id": "\xff"}',
    "nested deeply": b"[" * 100_000,
    "a list, not an object": [1, 2],
    "und is a string": {**GOOD_LINE, "id": "b", "und": "what?"},
    "gen is a list": {**GOOD_LINE, "id": "b", "gen": ["g"]},
    "refs is a string": {**GOOD_LINE, "id": "b", "refs": "B"},
    "refs.text is a number": {**GOOD_LINE, "id": "b", "refs": {"text": 3}},
    "refs.choice is a list": {**GOOD_LINE, "id": "b", "refs": {"choice": ["B"]}},
    "und.images is a string": {**GOOD_LINE, "id": "b", "und": {"prompt": "u", "images": "a.png"}},
    "und.images holds a number": {**GOOD_LINE, "id": "b", "und": {"prompt": "u", "images": [1]}},
    "image path has a NUL byte": {**GOOD_LINE, "id": "b", "und": {"prompt": "u", "images": ["a\u0000.png"]}},
    "image path escapes": {**GOOD_LINE, "id": "b", "und": {"prompt": "u", "images": ["../x.png"]}},
    "image is a link outside": {**GOOD_LINE, "id": "b", "und": {"prompt": "u", "images": ["link.png"]}},
    "id is a boolean": {**GOOD_LINE, "id": True},
    "unknown category": {**GOOD_LINE, "id": "b", "category": "Cooking"},
    "counts are not integers": {**GOOD_LINE, "id": "b", "refs": {"counts": {"cat": "three"}}},
    "subcategory is an object": {**GOOD_LINE, "id": "b", "subcategory": {"x": 1}},
}


def write_jsonl(case: str, base: Path) -> tuple[Path, Path]:
    """The suite of one JSONL case under ``base``; returns (the suite file, the outside folder)."""
    root, outside = base / "suite", base / "outside"
    root.mkdir(parents=True)
    outside.mkdir(parents=True)
    os.symlink(png(outside / "secret.png"), root / "link.png")
    bad = JSONL_CASES[case]
    line = bad if isinstance(bad, bytes) else json.dumps(bad).encode()
    path = root / "suite.jsonl"
    path.write_bytes(json.dumps(GOOD_LINE).encode() + b"\n" + line + b"\n")
    return path, outside
