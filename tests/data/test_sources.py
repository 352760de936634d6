"""Tests for the image sources (TFDS through tfds.testing.mock_data only)."""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgen.data import sources
from jaxgen.data.toy import ToySource
from jaxgen.errors import DataError


# --- digits ------------------------------------------------------------------


def test_digits_matches_sklearn():
    from sklearn.datasets import load_digits

    d = load_digits()
    src = sources.digits_source()
    assert len(src) == 1797 and src.image_shape == (8, 8, 1) and src.num_classes == 10
    assert src.name == "digits"
    assert src.images.dtype == np.uint8 and src.images.shape == (1797, 8, 8, 1)
    np.testing.assert_array_equal(src.images[..., 0], np.round(d.images * 255 / 16).astype(np.uint8))
    np.testing.assert_array_equal(src.labels, d.target)
    item = src[5]
    assert item["image"].dtype == np.uint8 and item["image"].shape == (8, 8, 1)
    assert isinstance(item["label"], int) and item["label"] == d.target[5]
    imgs, labels = src.get_batch([3, 1, 3])
    np.testing.assert_array_equal(imgs, src.images[[3, 1, 3]])
    assert labels.dtype == np.int32
    assert not src.images.flags.writeable  # the cached arrays are shared


def test_digits_splits_are_disjoint_stratified_and_deterministic():
    full = sources.digits_source("all")
    train, test = sources.digits_source("train"), sources.digits_source("test")
    assert len(train) + len(test) == len(full) and 0.09 < len(test) / len(full) < 0.11
    tr_idx = sources._digits_split_indices(full.labels, "train")
    te_idx = sources._digits_split_indices(full.labels, "test")
    np.testing.assert_array_equal(np.sort(np.concatenate([tr_idx, te_idx])), np.arange(len(full)))
    np.testing.assert_array_equal(train.images, full.images[tr_idx])
    np.testing.assert_array_equal(test.labels, full.labels[te_idx])
    counts = np.bincount(test.labels, minlength=10)
    assert counts.min() >= 17 and counts.max() <= 19
    np.testing.assert_array_equal(sources.digits_source("test").images, test.images)
    with pytest.raises(DataError, match="unknown split 'validation'.*all, train, test"):
        sources.digits_source("validation")


def test_make_source_dispatch():
    assert isinstance(sources.make_source("digits", "test"), sources.ArraySource)
    toy = sources.make_source("toy:moons", "ignored", "/does/not/matter")
    assert isinstance(toy, ToySource) and toy.name == "moons"
    with pytest.raises(DataError, match="unknown toy distribution 'spiral'"):
        sources.make_source("toy:spiral")
    assert "digits" in sources.IMAGE_SOURCES and "mnist" in sources.IMAGE_SOURCES
    assert "8gaussians" in sources.TOY_DISTRIBUTIONS


def test_array_source_validates():
    with pytest.raises(DataError, match="uint8"):
        sources.ArraySource(np.zeros((2, 4, 4, 1), np.float32), np.zeros(2), 1, "bad")
    with pytest.raises(DataError, match="labels shape"):
        sources.ArraySource(np.zeros((2, 4, 4, 1), np.uint8), np.zeros(3), 1, "bad")


# --- TFDS (mocked) -------------------------------------------------------------


@pytest.mark.parametrize(
    "name,split,shape",
    [("mnist", "train", (28, 28, 1)), ("fashion_mnist", "test[:90%]", (28, 28, 1)), ("cifar10", "train", (32, 32, 3))],
)
def test_tfds_source_mock(name, split, shape):
    with tfds.testing.mock_data(num_examples=23):
        src = sources.make_source(name, split, data_dir=None)
        assert isinstance(src, sources.TFDSSource)
        assert len(src) == 23 and src.image_shape == shape and src.num_classes == 10
        assert src.name == name and src.split == split
        item = src[4]
        assert item["image"].dtype == np.uint8 and item["image"].shape == shape
        assert isinstance(item["label"], int) and 0 <= item["label"] < 10
        idx = [7, 0, 22, 7]
        imgs, labels = src.get_batch(np.array(idx))
        assert imgs.shape == (4,) + shape and imgs.dtype == np.uint8 and labels.dtype == np.int32
        for j, i in enumerate(idx):
            np.testing.assert_array_equal(imgs[j], src[i]["image"])
            assert labels[j] == src[i]["label"]


def test_tfds_missing_data_dir(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=r"data_dir '.*nope' does not exist"):
        sources.tfds_source("mnist", "test", data_dir=missing)
    assert not missing.exists()


def test_tfds_unknown_name(tmp_path):
    with pytest.raises(DataError, match=r"unknown TFDS dataset name 'mnsit'; did you mean .*mnist"):
        sources.tfds_source("mnsit", "test", data_dir=tmp_path)


def test_tfds_not_prepared_says_where_and_does_not_download(tmp_path):
    # No mock: the real code path, which must fail fast and write nothing.
    with pytest.raises(DataError, match=r"'mnist' not found in .*looked in .*mnist.*must be downloaded and prepared"):
        sources.tfds_source("mnist", "test", data_dir=tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.fixture
def mnist_metadata(tmp_path):
    """A data_dir with only dataset_info.json, so mock_data sees real splits."""
    d = tmp_path / "mnist" / "3.0.1"
    d.mkdir(parents=True)
    template = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    info = {
        "name": "mnist",
        "version": "3.0.1",
        "fileFormat": "array_record",
        "splits": [
            {"name": "train", "numBytes": "0", "shardLengths": ["40"], "filepathTemplate": template},
            {"name": "test", "numBytes": "0", "shardLengths": ["20"], "filepathTemplate": template},
        ],
    }
    (d / "dataset_info.json").write_text(json.dumps(info))
    return str(tmp_path)


def test_tfds_unknown_split_lists_available(mnist_metadata):
    with tfds.testing.mock_data(
        num_examples=10, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=mnist_metadata
    ):
        assert len(sources.tfds_source("mnist", "test[:50%]", mnist_metadata)) == 10
        with pytest.raises(DataError, match=r"unknown split 'validation'.*available splits: train, test"):
            sources.tfds_source("mnist", "validation", mnist_metadata)
        with pytest.raises(DataError, match=r"bad split 'train\[:200%\]'.*available splits: train, test"):
            sources.tfds_source("mnist", "train[:200%]", mnist_metadata)


# --- stacked -----------------------------------------------------------------


def test_stacked_source_stacks_three_base_images_with_a_joint_label():
    base = sources.digits_source("train")
    src = sources.make_source("stacked:digits", "train")
    assert src.name == f"stacked:{base.name}" and len(src) == len(base)
    assert src.image_shape == (8, 8, 3) and src.num_classes == 1000
    # Every channel is an image of the base, and the label names the three digits.
    flat = {base.images[i, ..., 0].tobytes(): int(base.labels[i]) for i in range(len(base))}
    for i in (0, 7, len(src) - 1):
        digits = [flat[src.images[i, ..., c].tobytes()] for c in range(3)]
        assert src.labels[i] == 100 * digits[0] + 10 * digits[1] + digits[2]
    np.testing.assert_array_equal(src.images[:, ..., 0], base.images[..., 0])
    # The other channels are permutations of the base, not copies of channel 0.
    for c in (1, 2):
        assert sorted(src.images[:, ..., c].reshape(len(src), -1).sum(1)) == sorted(
            base.images.reshape(len(base), -1).sum(1))
        assert np.mean(src.images[..., c] != src.images[..., 0]) > 0.3
    np.testing.assert_array_equal(src.labels, sources.stacked_source(base).labels)  # fixed
    assert len(np.unique(src.labels)) > 500  # many of the 1,000 modes in 1,215 examples


def test_stacked_source_needs_one_channel_images_with_labels():
    rgb = sources.ArraySource(np.zeros((4, 2, 2, 3), np.uint8), np.zeros(4), 10, "rgb")
    with pytest.raises(DataError, match="one-channel images with labels"):
        sources.stacked_source(rgb)
