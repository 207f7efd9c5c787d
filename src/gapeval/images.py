"""Image files: validation, hashing, safe paths."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image

from gapeval.errors import GapevalError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def safe_join(root: Path, relative: str, *, file: Path, field: str) -> Path:
    """Resolve ``relative`` under ``root``, refusing paths that escape it.

    Raises:
        GapevalError: The path is absolute or leads outside ``root``.

    """
    root = root.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise GapevalError(f"image path {relative!r} escapes the dataset root {root}", file=file, field=field)
    return candidate


def verify_image(path: Path, *, file: Path, field: str) -> None:
    """Fully decode an image so that truncated or corrupt files fail now, not in a model.

    Raises:
        GapevalError: Missing, unreadable, truncated or not an image.

    """
    if not path.is_file():
        raise GapevalError(f"image {path} does not exist", file=file, field=field)
    try:
        with Image.open(path) as img:
            img.load()
    except Exception as exc:  # PIL raises many types for bad files
        raise GapevalError(
            f"image {path} is unreadable or truncated ({exc})", file=file, field=field
        ) from exc


def first_image(folder: Path) -> Path | None:
    """The first image file (sorted by name) in ``folder``, or None."""
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return files[0] if files else None


def png_bytes(img: Image.Image) -> bytes:
    """Encode an image as PNG (RGB), the one on-disk form of generated images."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()
