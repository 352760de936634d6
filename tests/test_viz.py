import numpy as np
import pytest
from PIL import Image

from jaxgen import viz


def test_grid_layout_values_and_png(tmp_path):
    imgs = np.stack([np.full((8, 8, 1), v, np.float32) for v in (-1.0, 0.0, 1.0, 2.0, -3.0)])
    grid = viz.image_grid(imgs, nrow=3, pad=1, min_cell=16, pad_value=77)
    # 8x8 cells enlarged x2 -> 16; 3 per row, 2 rows, 1-pixel padding
    assert grid.shape == (2 * 17 + 1, 3 * 17 + 1, 1) and grid.dtype == np.uint8
    cell = lambda r, c: grid[1 + r * 17:1 + r * 17 + 16, 1 + c * 17:1 + c * 17 + 16]
    assert np.all(cell(0, 0) == 0) and np.all(cell(0, 1) == 128) and np.all(cell(0, 2) == 255)
    assert np.all(cell(1, 0) == 255) and np.all(cell(1, 1) == 0)  # clipped
    assert np.all(cell(1, 2) == 77)  # empty slot is background
    assert grid[0, 0, 0] == 77
    path = viz.save_grid(imgs, str(tmp_path / "sub" / "g.png"), nrow=3)
    assert np.asarray(Image.open(path)).shape[:2] == (2 * 34 + 2, 3 * 34 + 2)


def test_grid_rejects_bad_shapes():
    with pytest.raises(ValueError, match="images must be"):
        viz.image_grid(np.zeros((2, 8, 8, 2)))


def test_points_are_saved_as_a_scatter_plot(tmp_path):
    pts = np.array([[0.0, 0.0], [2.9, 2.9], [-2.9, -2.9], [1e30, 0.0], [np.nan, 0.0]])
    img = viz.scatter_image(pts, size=61, extent=3.0, radius=0)
    assert img.shape == (61, 61) and img.dtype == np.uint8
    # the origin in the centre; +y is up; points outside the extent or not finite are left out
    assert img[30, 30] == 0 and img[1, 59] == 0 and img[59, 1] == 0
    assert np.sum(img == 0) == 3
    path = viz.save_samples(pts, str(tmp_path / "s" / "p.png"))
    assert np.asarray(Image.open(path)).shape == (256, 256)
    with pytest.raises(ValueError, match="images"):
        viz.save_samples(np.zeros((2, 3, 4)), str(tmp_path / "bad.png"))
