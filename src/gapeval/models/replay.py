"""Replay outputs that already exist on disk in the authors' layout.

For item folder ``data_<n>``, model ``M`` wrote ``data_<n>/M/text.json`` (``{"output_text": ...}``)
and one or more images in ``data_<n>/M/``. Image sample ``k`` is the ``k``-th image by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import JsonValue

from gapeval.errors import GapevalError
from gapeval.images import IMAGE_SUFFIXES
from gapeval.models.base import (
    Capabilities,
    GenerateRequest,
    ImageOutput,
    ModelContext,
    TextOutput,
    UnderstandRequest,
)


class ReplayModel:
    """A model whose answers were produced elsewhere and saved in the authors' layout."""

    capabilities = Capabilities(understands=True, generates=True, edits=True)

    def __init__(self, model_dir_name: str, root: Path, sources: dict[str, str]) -> None:
        self.name = f"replay:{model_dir_name}"
        self.model_dir_name = model_dir_name
        self.root = root
        self._sources = sources

    batch_size = 64

    @classmethod
    def _root(cls, arg: str, options: dict[str, str], context: ModelContext) -> Path:
        if not arg:
            raise GapevalError("replay needs the model folder name, e.g. replay:janus-pro", field="model")
        unknown = set(options) - {"root"}
        if unknown:
            raise GapevalError(
                f"unknown replay option {sorted(unknown)[0]!r}; known: root", field="--model-opt"
            )
        root = Path(options.get("root", context.suite_root))
        if not root.is_dir():
            raise GapevalError("replay root does not exist", file=root, field="root")
        folders = [root / src for src in dict.fromkeys(context.sources.values())]
        if folders and not any((f / arg).is_dir() for f in folders):
            # Every item folder's subfolders, less the dataset's own (question and reference images).
            names = sorted({p.name for f in folders if f.is_dir() for p in f.iterdir() if p.is_dir()}
                           - {"image", "inage", "ref", "input"})  # fmt: skip
            have = f"saved models: {', '.join(names[:20])}" if names else "no item holds saved outputs"
            raise GapevalError(f"no item folder holds a folder {arg!r}; {have}", file=root, field="model")
        return root

    @classmethod
    def identify(cls, arg: str, options: dict[str, str], context: ModelContext) -> dict[str, JsonValue]:
        """The replayed folder name and root (the files themselves are the suite's)."""
        return {"model_dir": arg, "root": str(cls._root(arg, options, context).resolve())}

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: ModelContext) -> ReplayModel:
        """``replay:MODEL`` reads ``<root>/data_<n>/MODEL``; option ``root=`` overrides the suite root."""
        return cls(arg, cls._root(arg, options, context), dict(context.sources))

    def describe(self) -> dict[str, Any]:
        """Recorded in the manifest."""
        return {"family": "replay", "model": self.model_dir_name, "root": str(self.root)}

    def _folder(self, item_id: str) -> Path | None:
        source = self._sources.get(item_id)
        return self.root / source / self.model_dir_name if source else None

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        """Read ``text.json`` for each request (only sample 0 exists on disk)."""
        out: list[TextOutput] = []
        for req in requests:
            folder = self._folder(req.item_id)
            path = folder / "text.json" if folder else None
            if path is None or not path.is_file():
                out.append(TextOutput(error=f"no saved text output ({path})"))
            elif req.sample > 0:
                out.append(TextOutput(error="only one saved text sample per item"))
            else:
                try:
                    text = json.loads(path.read_text(encoding="utf-8")).get("output_text")
                except (json.JSONDecodeError, AttributeError) as exc:
                    out.append(TextOutput(error=f"{path}: unreadable ({exc})"))
                    continue
                out.append(
                    TextOutput(text=text, meta={"file": str(path)})
                    if isinstance(text, str)
                    else TextOutput(error=f"{path}: field 'output_text' missing")
                )
        return out

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """Return the ``sample``-th saved image for each request."""
        out: list[ImageOutput] = []
        for req in requests:
            folder = self._folder(req.item_id)
            files = (
                sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if folder and folder.is_dir()
                else []
            )
            if req.sample >= len(files):
                out.append(ImageOutput(error=f"no saved image for sample {req.sample} in {folder}"))
                continue
            try:
                with Image.open(files[req.sample]) as img:
                    out.append(ImageOutput(image=img.convert("RGB"), meta={"file": str(files[req.sample])}))
            except Exception as exc:
                out.append(ImageOutput(error=f"{files[req.sample]}: unreadable ({exc})"))
        return out
