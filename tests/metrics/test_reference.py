"""Reference statistics: computed once, loaded after, recomputed when the cache is bad."""

import os
import shutil

import numpy as np
import pytest

from jaxgen.metrics import FeatureStats, classifier_extractor, reference as reference_lib
from jaxgen.metrics import reference_stats
from tests.metrics.helpers import make_extractor


@pytest.fixture(scope="module")
def extractor():
    return make_extractor()


def count_computations(monkeypatch):
    calls = []
    real = reference_lib.feature_stats

    def counting(*args, **kwargs):
        calls.append(kwargs.get("split"))
        return real(*args, **kwargs)

    monkeypatch.setattr(reference_lib, "feature_stats", counting)
    return calls


def test_computed_once_then_loaded(tmp_path, monkeypatch, extractor):
    calls = count_computations(monkeypatch)
    a = reference_stats("digits", "test", extractor, cache_dir=str(tmp_path))
    b = reference_stats("digits", "test", extractor, cache_dir=str(tmp_path))
    assert calls == ["test"]  # the second call read the cache
    np.testing.assert_array_equal(a.cov, b.cov)
    assert (b.count, b.dataset, b.split, b.extractor) == (176, "digits", "test",
                                                           extractor.identifier)
    (name,) = os.listdir(tmp_path)
    assert name.startswith(f"digits-test-classifier-digits-{extractor.hash[:16]}-n176-")
    # a different count, split or extractor is a different file
    reference_stats("digits", "test", extractor, cache_dir=str(tmp_path), max_samples=100)
    reference_stats("digits", "train", extractor, cache_dir=str(tmp_path), max_samples=100)
    reference_stats("digits", "test", make_extractor(seed=1), cache_dir=str(tmp_path))
    assert len(os.listdir(tmp_path)) == 4 and len(calls) == 4


def test_corrupted_and_mismatching_caches_are_recomputed(tmp_path, monkeypatch, extractor):
    calls = count_computations(monkeypatch)
    good = reference_stats("digits", "test", extractor, cache_dir=str(tmp_path),
                           max_samples=120)
    path = reference_lib.reference_path("digits", "test", extractor, 120, str(tmp_path))
    # 1. truncated file
    with open(path, "r+b") as f:
        f.truncate(100)
    again = reference_stats("digits", "test", extractor, cache_dir=str(tmp_path),
                            max_samples=120)
    assert len(calls) == 2
    np.testing.assert_array_equal(again.cov, good.cov)
    # 2. a valid stats file of another split copied under this name
    other = reference_stats("digits", "train", extractor, cache_dir=str(tmp_path),
                            max_samples=120)
    other_path = reference_lib.reference_path("digits", "train", extractor, 120, str(tmp_path))
    shutil.copy(other_path, path)
    assert FeatureStats.load(path).split == "train"  # loads fine, but is the wrong data
    again = reference_stats("digits", "test", extractor, cache_dir=str(tmp_path),
                            max_samples=120)
    assert len(calls) == 4 and again.split == "test"
    np.testing.assert_array_equal(again.mean, good.mean)
    assert not np.allclose(other.mean, good.mean)


def test_wrong_image_shape_is_an_error(tmp_path):
    # The shape check comes before any use of the parameters, so dummy ones do.
    ext28 = classifier_extractor({"w": np.zeros(1)}, name="classifier-mnist",
                                 input_shape=(28, 28, 1))
    with pytest.raises(ValueError, match="takes"):
        reference_stats("digits", "test", ext28, cache_dir=str(tmp_path))


def test_reference_features_are_cached_verified_and_equal_fresh_extraction(tmp_path,
                                                                            monkeypatch,
                                                                            extractor):
    from jaxgen.metrics import extract_features, load_split_images, reference_features

    calls = []
    real = reference_lib.load_split_images
    monkeypatch.setattr(reference_lib, "load_split_images",
                        lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    a = reference_features("digits", "test", extractor, 150, cache_dir=str(tmp_path))
    b = reference_features("digits", "test", extractor, 150, cache_dir=str(tmp_path))
    assert calls == ["test"] and a.shape == (150, extractor.feature_dim)
    np.testing.assert_array_equal(a, b)
    images, _ = load_split_images("digits", "test", max_samples=150)
    np.testing.assert_allclose(a, extract_features(extractor, images), rtol=1e-6, atol=1e-6)
    # An edited array no longer matches its checksum: recomputed, not trusted.
    path = reference_lib.reference_path("digits", "test", extractor, 150, str(tmp_path),
                                        kind="features")
    with np.load(path) as z:
        meta = z["metadata"]
    np.savez(path, features=a + 1.0, metadata=meta)
    c = reference_features("digits", "test", extractor, 150, cache_dir=str(tmp_path))
    assert len(calls) == 2
    np.testing.assert_array_equal(c, a)
    # More than the split holds: all of it, and the count says so.
    assert reference_features("digits", "test", extractor, 10_000,
                              cache_dir=str(tmp_path)).shape[0] == 176
