"""Pictures: sample grids (images) and scatter plots (points) as PNG."""

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
    return save_png(grid[..., 0] if grid.shape[-1] == 1 else grid, path)


def save_png(pixels: np.ndarray, path: str) -> str:
    """Writes uint8 (H, W) or (H, W, 3) pixels to ``path`` as PNG, creating its folder.

    The file appears atomically (written aside, then renamed): a crash never leaves a
    truncated picture where a reader expects a whole one.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    Image.fromarray(pixels).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def scatter_image(points, size: int = 256, extent: float = 3.0, radius: int = 1,
                  log_density=None) -> np.ndarray:
    """Draws the first two coordinates of (N, D) points as black dots on white.

    The square [-extent, extent]^2 fills the picture (the toy distributions have unit
    variance per coordinate, so 3.0 shows nearly all of their mass); points outside it
    are left out. With ``log_density`` ((M, 2) -> (M,) log p, e.g. the data's exact
    density) the background is shaded blue by that density (on a square-root scale so
    that low-density modes stay visible), so samples can be judged against where the
    mass truly is. Returns uint8 (size, size), or (size, size, 3) with a density.
    """
    p = np.asarray(points, np.float32)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"points must be (N, D) with D >= 2, got shape {p.shape}")
    img = np.full((size, size), 255, np.uint8)
    if log_density is not None:
        centres = (np.arange(size) + 0.5) / size * 2 * extent - extent
        gx, gy = np.meshgrid(centres, centres[::-1])  # row 0 is the top (largest y)
        logp = np.asarray(log_density(np.stack([gx.ravel(), gy.ravel()], 1)), np.float64)
        dens = np.exp(logp - np.max(logp[np.isfinite(logp)], initial=0.0))
        dens = np.sqrt(np.where(np.isfinite(logp), dens, 0.0).reshape(size, size, 1))
        blue = np.asarray([70.0, 130.0, 230.0])
        img = np.round(255 + dens * (blue - 255)).astype(np.uint8)
    p = p[np.isfinite(p[:, :2]).all(axis=1), :2]  # a diverged sampler may give inf/nan
    p = np.clip(p, -2.0 * extent, 2.0 * extent)   # still outside, but castable to int
    pix = np.round((p + extent) / (2 * extent) * (size - 1)).astype(np.int64)
    col, row = pix[:, 0], (size - 1) - pix[:, 1]  # y points up
    for dr in range(-radius, radius + 1):
        for dc in range(-radius, radius + 1):
            r, c = row + dr, col + dc
            ok = (r >= 0) & (r < size) & (c >= 0) & (c < size)
            img[r[ok], c[ok]] = 0
    return img


def save_samples(samples, path: str, *, nrow: int | None = None, log_density=None) -> str:
    """Writes samples as PNG: a grid for images (N, H, W, C) with ``nrow`` per row (e.g.
    the number of classes, so that each column is one class), a scatter plot for points
    (N, D), over ``log_density`` when given (see ``scatter_image``). Returns the path."""
    x = np.asarray(samples)
    if x.ndim == 4:
        return save_grid(x, path, nrow)
    if x.ndim != 2:
        raise ValueError(f"samples must be images (N, H, W, C) or points (N, D), got {x.shape}")
    return save_png(scatter_image(x, log_density=log_density), path)


def read_jsonl(path: str) -> list[dict]:
    """The records of a JSON-lines file (e.g. workdir/metrics.jsonl); [] when it is missing.

    A run that was killed mid-write can leave a truncated last line: it is skipped.
    Records of the same step are merged (training and evaluation metrics are written
    separately), later values winning, so a step logged again after a resume appears once
    and curves never zig-zag back in time.
    """
    import json

    if not os.path.exists(path):
        return []
    by_step: dict = {}
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            step = rec.get("step", len(by_step))
            by_step[step] = {**by_step.get(step, {}), **rec}
    return [by_step[s] for s in sorted(by_step)]


def plot_curves(records: list[dict], path: str, keys=None, title: str = "") -> str | None:
    """Plots metric curves against ``step``, one panel per key, and writes a PNG.

    Args:
      records: dicts with a ``step`` and scalar metrics (``read_jsonl`` output).
      path: where the PNG goes.
      keys: the metrics to plot (default: every numeric key except ``step``; ``loss``
        first). Keys missing from every record are ignored.
      title: figure title.

    Returns:
      The path, or None when there is nothing to plot.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    if keys is None:
        found = {k for r in records for k, v in r.items()
                 if k != "step" and isinstance(v, (int, float))}
        keys = sorted(found, key=lambda k: (k != "loss", k))
    keys = [k for k in keys if any(k in r for r in records)]
    if not keys:
        return None
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        pts = [(r["step"], r[key]) for r in records if key in r and np.isfinite(r[key])]
        steps, vals = zip(*pts) if pts else ((), ())
        ax.plot(steps, vals, marker="." if len(pts) < 30 else None, lw=1.2)
        positive = len(vals) > 1 and min(vals) > 0 and max(vals) / min(vals) > 30
        if positive:  # losses spanning decades read better on a log axis
            ax.set_yscale("log")
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path + ".tmp.png", dpi=100)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)
    return path
