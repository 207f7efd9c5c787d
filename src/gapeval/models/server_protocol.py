"""The gapeval model-server protocol, version 1 (documented in ``docs/model-server.md``).

Three endpoints, JSON over HTTP, images as base64 PNG:

- ``GET /v1/health`` -> ``{"protocol": "gapeval-model-server", "version": 1, "name", "capabilities":
  {"understands", "generates", "edits"}, "batch_size", "identity": {...}, "description": {...}}``
- ``POST /v1/understand`` with ``{"requests": [{"item_id", "prompt", "images": [PNG_B64, ...], "seed",
  "sample"}]}`` -> ``{"outputs": [{"text": str | null, "error": str | null, "meta": {}}]}``
- ``POST /v1/generate`` with ``{"requests": [{"item_id", "prompt", "input_image": PNG_B64 | null, "seed",
  "sample"}]}`` -> ``{"outputs": [{"image": PNG_B64 | null, "error": str | null, "meta": {}}]}``

One output per request, in order; a request that fails has ``error`` set and fails alone. A whole call that
fails answers an HTTP error status with ``{"error": "..."}``. A server that requires a token answers 401
unless a request carries ``Authorization: Bearer TOKEN``; both sides read it from ``GAPEVAL_SERVE_TOKEN``.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image

PROTOCOL = "gapeval-model-server"
VERSION = 1
#: The environment variable holding the shared token (the server's and the client's).
TOKEN_ENV = "GAPEVAL_SERVE_TOKEN"


def png_b64(image: Image.Image) -> str:
    """An image as base64 PNG (RGB)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def file_b64(path: str | Path) -> str:
    """An image file as base64 PNG: a PNG's own bytes, anything else converted once."""
    data = Path(path).read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return base64.b64encode(data).decode("ascii")
    with Image.open(io.BytesIO(data)) as img:
        return png_b64(img)


def image_of(b64: str, max_pixels: int) -> Image.Image:
    """Decode a base64 image, refusing one larger than ``max_pixels`` before decoding it.

    Raises:
        ValueError: Not base64, not an image, or too large.

    """
    data = base64.b64decode(b64, validate=True)
    img = Image.open(io.BytesIO(data))
    if img.width * img.height > max_pixels:
        raise ValueError(f"image is {img.width}x{img.height}, over the {max_pixels}-pixel cap")
    img.load()
    return img.convert("RGB")
