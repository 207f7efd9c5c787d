"""The shapes world: scenes on a 3x3 grid, rendered with jitter, and read back by an exact parser.

A scene is a tuple of 9 cells (row-major), each empty (None) or an object ``(colour, shape)``. Rendering
jitters size, position and colour, so pixels are not a function of the symbols; the parser reads any
48x48 image of the world (rendered, decoded from tokens, or drawn by another model) back into a scene by
colour classification and template matching.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from typing import TypeAlias

import numpy as np
from PIL import Image, ImageDraw

GRID = 3
CELL = 16
SIZE = GRID * CELL
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (150, 60, 190),
}
SHAPES = ("circle", "triangle", "square", "pentagon")
SIDES = {"triangle": 3, "square": 4, "pentagon": 5}
POSITIONS = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
PLURALS = {s: s + "s" for s in SHAPES}

Obj: TypeAlias = tuple[str, str]
Scene: TypeAlias = tuple[Obj | None, ...]

_RADIUS = (5.5, 7.0)
_OFFSET = 1.0
_COLOUR_JITTER = 12


def empty_scene() -> Scene:
    """A scene with nothing in it."""
    return (None,) * (GRID * GRID)


def row_col(cell: int) -> tuple[int, int]:
    """Row and column of a cell index."""
    return divmod(cell, GRID)


def _vertices(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    n = SIDES[shape]
    start = -math.pi / 2 + (math.pi / 4 if shape == "square" else 0.0)
    scale = 0.95 if shape == "square" else 1.0
    return [
        (
            cx + r * scale * math.cos(start + 2 * math.pi * k / n),
            cy + r * scale * math.sin(start + 2 * math.pi * k / n),
        )
        for k in range(n)
    ]


def _draw(
    pen: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: tuple[int, ...]
) -> None:
    if shape == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        pen.polygon(_vertices(shape, cx, cy, r), fill=fill)


def render(scene: Scene, rng: np.random.Generator | None = None) -> Image.Image:
    """Draw a scene; with ``rng``, size, position and colour are jittered (else drawn canonically)."""
    img = Image.new("RGB", (SIZE, SIZE), "white")
    pen = ImageDraw.Draw(img)
    for cell, obj in enumerate(scene):
        if obj is None:
            continue
        colour, shape = obj
        row, col = row_col(cell)
        cx, cy = col * CELL + CELL / 2 - 0.5, row * CELL + CELL / 2 - 0.5
        r = sum(_RADIUS) / 2
        fill: tuple[int, ...] = COLOURS[colour]
        if rng is not None:
            cx += rng.uniform(-_OFFSET, _OFFSET)
            cy += rng.uniform(-_OFFSET, _OFFSET)
            r = rng.uniform(*_RADIUS)
            # Python min/max, not np.clip: this runs ~100k times per training chunk.
            fill = tuple(
                min(255, max(0, c + int(rng.integers(-_COLOUR_JITTER, _COLOUR_JITTER + 1)))) for c in fill
            )
        _draw(pen, shape, cx, cy, r, fill)
    return img


@lru_cache(maxsize=1)
def _templates() -> tuple[np.ndarray, np.ndarray]:
    """Binary masks of every shape over the jitter range: (n_templates, CELL*CELL) and their shape index."""
    masks, labels = [], []
    for si, shape in enumerate(SHAPES):
        for r in np.linspace(_RADIUS[0], _RADIUS[1], 7):
            for dx in np.linspace(-_OFFSET, _OFFSET, 5):
                for dy in np.linspace(-_OFFSET, _OFFSET, 5):
                    img = Image.new("L", (CELL, CELL), 0)
                    _draw(
                        ImageDraw.Draw(img), shape, CELL / 2 - 0.5 + dx, CELL / 2 - 0.5 + dy, float(r), (255,)
                    )
                    masks.append(np.asarray(img, dtype=np.float32).reshape(-1) / 255.0)
                    labels.append(si)
    return np.stack(masks), np.asarray(labels)


_PALETTE = np.asarray(list(COLOURS.values()), dtype=np.float32)
_COLOUR_NAMES = list(COLOURS)


def cells_of(images: np.ndarray) -> np.ndarray:
    """(N, 48, 48, 3) uint8 -> (N * 9, 16, 16, 3) cells, row-major per image."""
    n = images.shape[0]
    x = images.reshape(n, GRID, CELL, GRID, CELL, 3).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n * GRID * GRID, CELL, CELL, 3)


def parse_cells(cells: np.ndarray) -> list[Obj | None]:
    """Classify cells (N, 16, 16, 3): empty, or (colour, shape) by nearest colour and best template IoU."""
    x = cells.astype(np.float32)
    ink = (255.0 * 3 - x.sum(axis=-1)) / 3.0  # 0 on white, ~up to 255 on saturated colours
    fg = (ink > 60.0).reshape(len(x), -1).astype(np.float32)
    counts = fg.sum(axis=1)
    masks, labels = _templates()
    inter = fg @ masks.T
    union = counts[:, None] + masks.sum(axis=1)[None, :] - inter
    best = labels[np.argmax(inter / np.maximum(union, 1.0), axis=1)]
    flat = x.reshape(len(x), -1, 3)
    out: list[Obj | None] = []
    for i in range(len(x)):
        if counts[i] < 12:
            out.append(None)
            continue
        mean = (flat[i] * fg[i][:, None]).sum(axis=0) / counts[i]
        colour = _COLOUR_NAMES[int(np.argmin(((_PALETTE - mean) ** 2).sum(axis=1)))]
        out.append((colour, SHAPES[int(best[i])]))
    return out


def parse(image: Image.Image | np.ndarray) -> Scene:
    """Read one image of the world back into a scene (any size is resized to 48x48)."""
    arr = image if isinstance(image, np.ndarray) else np.asarray(_as_world_image(image))
    return tuple(parse_cells(cells_of(arr[None])))


def parse_many(images: np.ndarray) -> list[Scene]:
    """Parse a batch (N, 48, 48, 3) of images."""
    flat = parse_cells(cells_of(images))
    return [tuple(flat[i * 9 : (i + 1) * 9]) for i in range(images.shape[0])]


def _as_world_image(image: Image.Image) -> Image.Image:
    img = image.convert("RGB")
    return img if img.size == (SIZE, SIZE) else img.resize((SIZE, SIZE), Image.Resampling.BILINEAR)


def counts(scene: Scene) -> Counter[Obj]:
    """How many of each object a scene holds."""
    return Counter(o for o in scene if o is not None)


def random_scene(rng: np.random.Generator, n_objects: int, pool: list[Obj] | None = None) -> Scene:
    """A scene with ``n_objects`` random objects in random cells."""
    cells = rng.choice(GRID * GRID, size=n_objects, replace=False)
    scene: list[Obj | None] = [None] * (GRID * GRID)
    for c in cells:
        scene[int(c)] = (
            pool[rng.integers(len(pool))]
            if pool
            else (_COLOUR_NAMES[rng.integers(len(_COLOUR_NAMES))], SHAPES[rng.integers(len(SHAPES))])
        )
    return tuple(scene)
