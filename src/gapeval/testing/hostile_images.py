"""Images that are no picture of the shapes world, for testing the exact judge's false-pass rate.

Each kind stands for what a real model might return: a black or white canvas, noise, a photo-like
picture (smooth colour fields with blobs, blurred), and shapes of the world drawn in colours that are not
the world's. All are seeded, so a test sees the same images every time.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from gapeval.suites.shapes import world

KINDS = ("black", "white", "noise", "photo", "off-palette")
#: Colours no object of the world has (orange, cyan, pink, grey, black, brown, lime).
OFF_PALETTE = ((255, 140, 0), (0, 200, 200), (255, 105, 180), (128, 128, 128), (0, 0, 0), (120, 60, 20),
               (150, 220, 60))  # fmt: skip


def hostile_image(kind: str, rng: np.random.Generator) -> Image.Image:
    """One image of ``kind`` (see :data:`KINDS`), at a random size where the kind allows it."""
    if kind == "black":
        return Image.new("RGB", (world.SIZE, world.SIZE), (0, 0, 0))
    if kind == "white":
        return Image.new("RGB", (world.SIZE, world.SIZE), (255, 255, 255))
    if kind == "noise":
        side = int(rng.integers(32, 300))
        return Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
    if kind == "photo":
        side = int(rng.integers(64, 256))
        base = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
        img = Image.fromarray(base).resize((side, side), Image.Resampling.BICUBIC)
        pen = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(2, 8))):
            x, y = rng.integers(0, side, 2)
            r = int(rng.integers(side // 16, side // 4))
            pen.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        return img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 2))))
    if kind == "off-palette":
        scene = world.random_scene(rng, int(rng.integers(1, 10)))
        img = Image.new("RGB", (world.SIZE, world.SIZE), "white")
        pen = ImageDraw.Draw(img)
        for cell, obj in enumerate(scene):
            if obj is None:
                continue
            row, col = world.row_col(cell)
            colour = OFF_PALETTE[int(rng.integers(len(OFF_PALETTE)))]
            world.draw_shape(pen, obj[1], col * world.CELL + 7.5, row * world.CELL + 7.5, 6.2, colour)
        return img
    raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
