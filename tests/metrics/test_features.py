"""Feature extractors: hashing, save/load, batching; metrics respond to image noise."""

import hashlib
import os

import jax
import numpy as np
import pytest

from jaxgen.data.pipeline import preprocess
from jaxgen.data.sources import digits_source
from jaxgen.metrics import (classifier_extractor, density_coverage, extract_features,
                            feature_stats, frechet_distance, kid, load_extractor,
                            precision_recall, stats_from_features)
from tests.metrics.helpers import ARCH, make_extractor


@pytest.fixture(scope="module")
def extractor():
    return make_extractor()


@pytest.fixture(scope="module")
def digits():
    return preprocess(digits_source("all").images)


def test_save_load_round_trip_and_the_file_is_named_by_its_hash(tmp_path, extractor, digits):
    path = extractor.save(str(tmp_path))
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == extractor.hash  # `sha256sum FILE` reproduces the hash
    assert os.path.basename(path) == f"classifier-digits-{digest[:16]}.msgpack"
    loaded = load_extractor(path)
    assert loaded.identifier == extractor.identifier and loaded.config == extractor.config
    np.testing.assert_array_equal(loaded(digits[:50]), extractor(digits[:50]))


def test_hash_changes_with_params_but_not_with_key_order(extractor):
    p = jax.tree.map(np.array, extractor.params)
    p["logits"]["bias"][3] += 1e-6
    changed = classifier_extractor(p, name="classifier-digits", input_shape=(8, 8, 1), **ARCH)
    assert changed.hash != extractor.hash
    reordered = {k: extractor.params[k] for k in reversed(list(extractor.params))}
    same = classifier_extractor(reordered, name="classifier-digits", input_shape=(8, 8, 1), **ARCH)
    assert same.hash == extractor.hash
    other_seed = make_extractor(seed=1)
    assert other_seed.hash != extractor.hash


def test_corrupted_or_foreign_files_are_rejected(tmp_path, extractor):
    path = extractor.save(str(tmp_path))
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(ValueError, match="does not match the file name"):
        load_extractor(path)
    junk = tmp_path / "junk.msgpack"
    junk.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ValueError, match="not a feature extractor"):
        load_extractor(str(junk))


def test_features_do_not_depend_on_batch_size_and_stats_stream(extractor, digits):
    x = digits[:300]
    a = extract_features(extractor, x, batch_size=64)
    b = extract_features(extractor, x, batch_size=7)  # 43 padded steps
    assert a.shape == (300, 32) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    s_arr = feature_stats(extractor, x, dataset="digits", split="all[:300]")
    s_iter = feature_stats(extractor, (x[i:i + 37] for i in range(0, 300, 37)),
                           dataset="digits", split="all[:300]")
    assert s_arr.count == s_iter.count == 300 and s_arr.extractor == extractor.identifier
    np.testing.assert_allclose(s_iter.cov, s_arr.cov, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(N, 8, 8, 1\)"):
        extract_features(extractor, np.zeros((3, 28, 28, 1), np.float32))


def test_metrics_grow_monotonically_with_image_noise(extractor, digits):
    # Random-init conv features of real digits against noisy copies of other digits:
    # no training is needed for the distances to order the corruption levels.
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(digits))
    ref, other = digits[perm[:880]], digits[perm[880:1760]]
    f_ref = extractor(ref)
    s_ref = stats_from_features(f_ref, extractor.identifier, "digits", "ref")
    fds, kids, precisions, densities = [], [], [], []
    for sigma in (0.0, 0.1, 0.2, 0.4, 0.8):
        noisy = np.clip(other + sigma * rng.standard_normal(other.shape), -1, 1)
        f = extractor(noisy.astype(np.float32))
        fds.append(frechet_distance(stats_from_features(f, extractor.identifier), s_ref).value)
        kids.append(kid(f, f_ref, num_subsets=10, subset_size=500).mean)
        precisions.append(precision_recall(f_ref, f).precision)
        densities.append(density_coverage(f_ref, f).density)
    assert all(a < b for a, b in zip(fds, fds[1:])), fds
    assert all(a < b for a, b in zip(kids, kids[1:])), kids
    assert precisions[0] > 0.8 and precisions[-1] < 0.5 * precisions[0], precisions
    assert densities[-1] < densities[0], densities
    assert fds[-1] > 10 * fds[0], fds  # the noise-free pair is near the floor
