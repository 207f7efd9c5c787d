"""The item model: one question asked both as understanding and as generation."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue


class Category(StrEnum):
    """The four GapEval categories."""

    INSTRUCTION_FOLLOWING = "Instruction Following"
    NUMERICAL_PERCEPTION = "Numerical Perception"
    WORLD_KNOWLEDGE = "World Knowledge"
    REASONING = "Reasoning"


class Direction(StrEnum):
    """The two directions an item is asked in."""

    UND = "und"
    GEN = "gen"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImageRef(_Frozen):
    """An image by absolute path and content hash; never inlined.

    Attributes:
        path: Absolute path of the file on this machine.
        sha256: Hex SHA-256 of the file's bytes (content identity, independent of the path).

    """

    path: str
    sha256: str

    @classmethod
    def from_file(cls, path: Path) -> ImageRef:
        """Reference a file on disk, hashing its bytes."""
        return cls(path=str(path.resolve()), sha256=hashlib.sha256(path.read_bytes()).hexdigest())


class UnderstandingTask(_Frozen):
    """Image(s) + text -> text."""

    prompt: str
    images: tuple[ImageRef, ...] = ()


class GenerationTask(_Frozen):
    """Text -> image, or image + text -> edited image when ``input_image`` is set."""

    prompt: str
    input_image: ImageRef | None = None

    @property
    def is_edit(self) -> bool:
        """Whether the task edits a given image rather than drawing from text alone."""
        return self.input_image is not None


class References(_Frozen):
    """What a judge compares against.

    Attributes:
        text: Reference answer text (lists in the source are joined with newlines).
        image: Reference image (the expected drawing or edit), when there is one.
        choice: The correct option letter of a multiple-choice question.
        counts: Counting targets, object name -> required number.
        structured: Any other structured reference, kept as found.

    """

    text: str | None = None
    image: ImageRef | None = None
    choice: str | None = None
    counts: dict[str, int] | None = None
    structured: JsonValue = None


class Item(_Frozen):
    """One bidirectional question.

    Attributes:
        id: Unique within its suite.
        category: One of the four GapEval categories.
        subcategory: Free-form subcategory (e.g. ``mmlu/mmmu``, ``puzzle``, ``draw``).
        source_category: The category string as written in the source data.
        und: The understanding task.
        gen: The generation task.
        refs: References for the judges.
        source: Where the item came from, relative to the suite root (e.g. ``data_12``).
        raw: The raw source record, kept because judges need fields we do not model.

    """

    id: str
    category: Category
    subcategory: str = ""
    source_category: str = ""
    und: UnderstandingTask
    gen: GenerationTask
    refs: References = Field(default_factory=References)
    source: str = ""
    raw: dict[str, Any] = Field(default_factory=dict)

    def content_hash(self) -> str:
        """Hash of what defines the item (paths excluded, image content included)."""
        data = self.model_dump(mode="json")

        def strip_paths(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: strip_paths(v) for k, v in node.items() if k != "path"}
            if isinstance(node, list):
                return [strip_paths(v) for v in node]
            return node

        blob = json.dumps(strip_paths(data), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()
