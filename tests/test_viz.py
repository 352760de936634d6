import json

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


def test_scatter_over_a_density_shades_where_the_mass_is(tmp_path):
    from jaxgen.data import log_prob, mixture_params

    img = viz.scatter_image(np.zeros((0, 2)), size=101, extent=3.0,
                            log_density=lambda x: log_prob("8gaussians", x))
    # 8gaussians: modes on a circle; the centre of the picture has no mass, a mode does.
    _, means, _ = mixture_params("8gaussians")
    right = means[np.argmax(means[:, 0])]  # the mode on the +x axis
    col = int(round((right[0] + 3) / 6 * 100 - 0.5))
    row = 100 - int(round((right[1] + 3) / 6 * 100 - 0.5))
    assert img.shape == (101, 101, 3)
    assert np.all(img[50, 50] == 255) and img[row, col, 0] < 150
    # samples are drawn on top, in black
    img = viz.scatter_image(np.zeros((1, 2)), size=101, radius=0,
                            log_density=lambda x: log_prob("8gaussians", x))
    assert np.all(img[50, 50] == 0)


def test_read_jsonl_skips_torn_lines_and_keeps_latest_record_per_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 3.0}\n{"step": 2, "loss": 2.0}\n{"step": 2, "fd": 9}\n'
                    '{"step": 2, "loss": 1.5}\n{"step": 3, "lo')  # resumed, then killed mid-line
    records = viz.read_jsonl(str(path))
    assert [r["step"] for r in records] == [1, 2]
    assert records[1] == {"step": 2, "loss": 1.5, "fd": 9}
    assert viz.read_jsonl(str(tmp_path / "missing.jsonl")) == []


def test_plot_curves_one_panel_per_metric(tmp_path):
    records = [{"step": s, "loss": 1.0 / s, "grad_norm": 2.0} for s in range(1, 50)]
    path = viz.plot_curves(records, str(tmp_path / "c.png"), keys=["loss", "grad_norm", "fd"])
    img = np.asarray(Image.open(path))
    assert img.shape[1] > img.shape[0] > 100        # two panels side by side; 'fd' absent
    assert (img[..., :3] < 128).any()                # something was drawn
    assert viz.plot_curves([], str(tmp_path / "none.png")) is None


def test_report_links_existing_pictures_and_metrics(tmp_path):
    from jaxgen.train import report

    (tmp_path / "config.json").write_text(json.dumps(
        {"family": "diffusion", "data": {"name": "digits", "split": "train"},
         "model": {"name": "unet"}, "train": {"num_steps": 4, "batch_size": 8},
         "diffusion": {"process": "rectified_flow", "prediction": "velocity"},
         "sampler": {"method": "euler", "num_steps": 10}}))
    (tmp_path / "metrics.jsonl").write_text('{"step": 2, "loss": 0.5}\n{"step": 4, "loss": 0.25}\n')
    (tmp_path / "eval.json").write_text(json.dumps({"step": 4, "fd": 12.5,
                                                    "reference": {"split": "test", "n": 1000}}))
    viz.save_grid(np.zeros((4, 8, 8, 1)), str(tmp_path / "samples.png"))
    text = open(report.write_report(str(tmp_path))).read()
    assert "rectified_flow" in text and "euler, 10 steps" in text
    assert "last logged step 4" in text and "| loss | 0.25 |" in text
    assert "| fd | 12.5 |" in text and "reference: split=test, n=1000" in text
    assert "![samples.png](samples.png)" in text and "(curves.png)" in text
    assert (tmp_path / "curves.png").exists()
