"""Pictures: sample grids as PNG."""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image


def to_uint8(images) -> np.ndarray:
    """Maps float images in [-1, 1] (values outside are clipped) to uint8 [0, 255]."""
    x = np.asarray(images, np.float32)
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images, nrow: int | None = None, pad: int = 2, min_cell: int = 32,
               pad_value: int = 96) -> np.ndarray:
    """Tiles (N, H, W, C) images in [-1, 1] into one uint8 (rows, cols, C) picture.

    Small images are enlarged by an integer factor (nearest neighbour) so that each
    cell is at least ``min_cell`` pixels high: 8x8 digits stay legible. Cells are
    separated by ``pad`` pixels of grey ``pad_value``, distinct from both black
    background and white ink.
    """
    x = to_uint8(images)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (N, H, W, 1 or 3), got shape {x.shape}")
    n, h, w, c = x.shape
    scale = max(1, math.ceil(min_cell / h))
    x = x.repeat(scale, axis=1).repeat(scale, axis=2)
    h, w = h * scale, w * scale
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = np.full((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = x[i]
    return grid


def save_grid(images, path: str, nrow: int | None = None) -> str:
    """Writes ``image_grid(images)`` to ``path`` as PNG (atomically) and returns the path."""
    grid = image_grid(images, nrow)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    tmp = path + ".tmp"
    img.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
