"""The built-in model's image tokenizer: one code per 16x16 grid cell from a k-means codebook.

Codes are fitted by k-means over jittered renders of each symbol, so one symbol such as a red
triangle is spread over many codes that differ in size, offset and tint: the model has to learn that
structure, and the decoded image is an average patch, not a clean symbolic rendering.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from gapeval.suites.shapes import world


def _world_sized(image: Image.Image) -> Image.Image:
    img = image.convert("RGB")
    if img.size != (world.SIZE, world.SIZE):
        img = img.resize((world.SIZE, world.SIZE), Image.Resampling.BILINEAR)
    return img


class ImageTokenizer:
    """Encode 48x48 world images to 9 codes and back.

    Args:
        codebook: (K, 16, 16, 3) float32 patches.

    """

    def __init__(self, codebook: np.ndarray) -> None:
        self.codebook = codebook.astype(np.float32)
        self._flat = self.codebook.reshape(len(codebook), -1)
        self._norms = (self._flat**2).sum(axis=1)

    @property
    def size(self) -> int:
        """Number of codes."""
        return len(self.codebook)

    @classmethod
    def fit(cls, per_symbol: int = 16, renders: int = 300, seed: int = 0) -> ImageTokenizer:
        """Fit a codebook: k-means over jittered renders of each symbol, plus one blank code.

        Fitting within each symbol keeps every code readable (its decoded patch parses back to its
        symbol); which codes make up a symbol is left for the model to learn. About 2 s.
        """
        from scipy.cluster.vq import kmeans2

        rng = np.random.default_rng(seed)
        codes = [np.full((world.CELL, world.CELL, 3), 255.0, dtype=np.float32)]
        for colour in world.COLOURS:
            for shape in world.SHAPES:
                scene = ((colour, shape),) + (None,) * (world.GRID * world.GRID - 1)
                patches = (
                    np.stack(
                        [
                            np.asarray(world.render(scene, rng))[: world.CELL, : world.CELL]
                            for _ in range(renders)
                        ]
                    )
                    .reshape(renders, -1)
                    .astype(np.float32)
                )
                centroids, _ = kmeans2(patches, per_symbol, seed=int(rng.integers(2**31)), minit="++")
                codes.extend(centroids.reshape(per_symbol, world.CELL, world.CELL, 3))
        return cls(np.stack(codes))

    def encode(self, images: np.ndarray) -> np.ndarray:
        """(N, 48, 48, 3) uint8 -> (N, 9) int64 codes (nearest centroid per cell)."""
        cells = world.cells_of(images).reshape(-1, self._flat.shape[1]).astype(np.float32)
        d = self._norms[None, :] - 2.0 * cells @ self._flat.T
        codes: np.ndarray = np.argmin(d, axis=1).reshape(images.shape[0], world.GRID * world.GRID)
        return codes

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """PIL images (any size: resized to 48x48 first) -> (N, 9) codes, in one encoder call."""
        pixels = np.zeros((0, world.SIZE, world.SIZE, 3), dtype=np.uint8)
        if images:
            pixels = np.stack([np.asarray(_world_sized(img)) for img in images])
        return self.encode(pixels)

    def encode_image(self, image: Image.Image) -> np.ndarray:
        """One PIL image -> (9,) codes."""
        codes: np.ndarray = self.encode_images([image])[0]
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(N, 9) codes -> (N, 48, 48, 3) uint8 images."""
        n = codes.shape[0]
        patches = self.codebook[codes.reshape(-1)].reshape(
            n, world.GRID, world.GRID, world.CELL, world.CELL, 3
        )
        img = patches.transpose(0, 1, 3, 2, 4, 5).reshape(n, world.SIZE, world.SIZE, 3)
        out: np.ndarray = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        return out

    def save(self, path: Path) -> None:
        """Store the codebook as uint8 (the decoded images are uint8 anyway)."""
        np.savez_compressed(path, codebook=np.clip(np.rint(self.codebook), 0, 255).astype(np.uint8))

    @classmethod
    def load(cls, path: Path) -> ImageTokenizer:
        """Load a codebook saved by :meth:`save`."""
        with np.load(path) as data:
            return cls(data["codebook"].astype(np.float32))
