"""Image files: validation, hashing, safe paths."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

from PIL import Image

from gapeval.errors import GapevalError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


#: Largest decoded image gapeval accepts (pixels); a bigger one is refused before it is decoded, so a
#: decompression bomb costs nothing. ``GAPEVAL_MAX_IMAGE_PIXELS`` changes it.
DEFAULT_MAX_PIXELS = 50_000_000


def max_pixels() -> int:
    """The decoded-size cap in force (``GAPEVAL_MAX_IMAGE_PIXELS``, default 50 megapixels)."""
    value = os.environ.get("GAPEVAL_MAX_IMAGE_PIXELS", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_PIXELS


def over_cap(img: Image.Image) -> str | None:
    """Why an opened (not yet decoded) image is refused by :func:`max_pixels`, or None when it is not."""
    cap, (width, height) = max_pixels(), img.size
    if width * height <= cap:
        return None
    return (f"{width}x{height} ({width * height / 1e6:.0f} megapixels), over the {cap / 1e6:.0f}-megapixel "
            "cap (GAPEVAL_MAX_IMAGE_PIXELS)")  # fmt: skip


def contained(path: Path, root: Path, *, file: str | Path, field: str) -> Path:
    """``path`` resolved (links followed), refused unless it lies inside ``root``.

    Raises:
        GapevalError: The path, or a link on the way to it, leads outside ``root``.

    """
    real_root = root.resolve()
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # a link loop
        raise GapevalError(
            f"{path.name!r} cannot be resolved ({exc.__class__.__name__})", file=file, field=field
        ) from exc
    if not real.is_relative_to(real_root):
        what = "a link" if path.is_symlink() or real != path.absolute() else "a path"
        raise GapevalError(
            f"{path} is {what} to {real}, outside the dataset root {real_root}; refused",
            file=file,
            field=field,
        )
    return real


def safe_join(root: Path, relative: str, *, file: Path, field: str) -> Path:
    """Resolve ``relative`` under ``root``, refusing paths (and links) that escape it.

    Raises:
        GapevalError: The path is absolute, holds a NUL byte, or leads outside ``root``.

    """
    if "\0" in relative:
        raise GapevalError("path holds a NUL byte", file=file, field=field)
    root = root.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise GapevalError(f"path {relative!r} escapes its folder {root}", file=file, field=field)
    return candidate


def verify_image(path: Path, *, file: Path, field: str) -> None:
    """Decode an image fully so that truncated or corrupt files fail now, not in a model.

    The size in its header is checked against :func:`max_pixels` before anything is decoded.

    Raises:
        GapevalError: Missing, unreadable, truncated, too large, or not an image.

    """
    if not path.is_file():
        raise GapevalError(f"image {path} does not exist or is not a file", file=file, field=field)
    try:
        with warnings.catch_warnings():  # our cap governs; Pillow's own bomb warning is not news
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            if too_big := over_cap(img):
                raise GapevalError(f"image {path} is {too_big}", file=file, field=field)
            img.load()
    except GapevalError:
        raise
    except Exception as exc:  # PIL raises many types for bad files
        raise GapevalError(
            f"image {path} is unreadable or truncated ({exc.__class__.__name__})", file=file, field=field
        ) from exc


def open_rgb(path: str | Path) -> Image.Image:
    """An image file decoded as RGB, refused before decoding when it is over :func:`max_pixels`.

    Raises:
        GapevalError: Unreadable, or over the pixel cap (a decompression bomb costs nothing).

    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if too_big := over_cap(img):
                    raise GapevalError(f"is {too_big}", file=path)
                return img.convert("RGB")
    except GapevalError:
        raise
    except Image.DecompressionBombError:
        raise GapevalError(f"over the {max_pixels() / 1e6:.0f}-megapixel cap", file=path) from None
    except Exception as exc:  # PIL raises many types for bad files
        raise GapevalError(f"unreadable image ({exc.__class__.__name__})", file=path) from None


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
