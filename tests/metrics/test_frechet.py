"""Frechet distance against closed forms; streaming statistics against numpy."""

import numpy as np
import pytest
import scipy.linalg

from jaxgen.metrics import (FeatureStats, StatsAccumulator, frechet_distance,
                            gaussian_frechet_distance, stats_from_features)


def random_spd(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / (rank or d) + (0 if rank else 0.1) * np.eye(d)


def test_fd_of_a_set_with_itself_is_zero_even_when_the_covariance_is_singular():
    rng = np.random.default_rng(0)
    for n in (500, 20):  # 20 < D = 64: the sample covariance has rank 19
        x = rng.standard_normal((n, 64)) @ rng.standard_normal((64, 64))
        s = stats_from_features(x)
        r = frechet_distance(s, s)
        scale = 2 * np.trace(s.cov)
        assert abs(r.value) < 1e-10 * scale, (n, r)
        assert r.sqrt_residual < 1e-8


def test_fd_matches_the_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(1)
    d = 10
    m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
    a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    # For commuting covariances (S1^1/2 S2 S1^1/2)^1/2 = diag(sqrt(a b)), so
    # FD = ||m1 - m2||^2 + sum (sqrt(a) - sqrt(b))^2 (Dowson & Landau 1982).
    want = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    r = gaussian_frechet_distance(m1, np.diag(a), m2, np.diag(b))
    np.testing.assert_allclose(r.value, want, rtol=1e-12)
    np.testing.assert_allclose(r.mean_term, np.sum((m1 - m2) ** 2), rtol=1e-12)


def test_fd_matches_the_closed_form_for_commuting_covariances():
    rng = np.random.default_rng(2)
    d = 12
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    a, b = rng.uniform(0.01, 2, d), rng.uniform(0.01, 2, d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    want = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    np.testing.assert_allclose(gaussian_frechet_distance(np.zeros(d), s1, np.zeros(d), s2).value,
                               want, rtol=1e-9)


def test_fd_matches_scipy_sqrtm_for_general_covariances():
    rng = np.random.default_rng(3)
    d = 16
    m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    root1 = scipy.linalg.sqrtm(s1).real
    cross = scipy.linalg.sqrtm(root1 @ s2 @ root1).real
    want = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * cross)
    r = gaussian_frechet_distance(m1, s1, m2, s2)
    np.testing.assert_allclose(r.value, want, rtol=1e-9)
    # FD is symmetric although the formula is not written symmetrically.
    np.testing.assert_allclose(gaussian_frechet_distance(m2, s2, m1, s1).value, want, rtol=1e-9)
    assert r.num_clipped == 0 and r.min_eigenvalue == 0.0


def test_fd_with_rank_deficient_covariances_matches_the_closed_form():
    # S1 = diag(a, 0, ...), S2 = diag(b, ...): singular but commuting, FD = sum (sqrt a -
    # sqrt b)^2 with sqrt(0) = 0. A sqrtm(S1 @ S2) route needs an eps * I offset here.
    a = np.array([2.0, 1.0, 0.0, 0.0])
    b = np.array([1.0, 0.0, 3.0, 0.0])
    want = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    r = gaussian_frechet_distance(np.zeros(4), np.diag(a), np.zeros(4), np.diag(b))
    np.testing.assert_allclose(r.value, want, rtol=1e-12, atol=1e-12)


def test_streaming_stats_equal_one_shot_numpy_mean_and_cov():
    rng = np.random.default_rng(4)
    # A large common offset: naive sum(x x^T)/n - mean mean^T would lose ~8 digits here.
    x = 1e4 + rng.standard_normal((1003, 7)) @ rng.standard_normal((7, 7))
    acc = StatsAccumulator()
    for part in np.split(x, [1, 17, 500, 501, 900]):  # uneven batches, two of a single row
        acc.update(part)
    s = acc.result("ext@abc", "toy", "all")
    np.testing.assert_allclose(s.mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(s.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    assert s.count == 1003 and s.cov.dtype == np.float64
    assert s.describe() == "n=1003 toy all (features ext@abc)"


def test_stats_file_round_trip_and_corruption_is_detected(tmp_path):
    rng = np.random.default_rng(5)
    s = stats_from_features(rng.standard_normal((50, 3)), "e@1", "digits", "test")
    path = s.save(str(tmp_path / "s.npz"))
    t = FeatureStats.load(path)
    np.testing.assert_array_equal(t.cov, s.cov)
    assert (t.count, t.extractor, t.dataset, t.split) == (50, "e@1", "digits", "test")
    with np.load(path) as z:
        arrays = dict(z)
    arrays["mean"] = arrays["mean"] + 1e-9  # a silently altered array
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="checksum"):
        FeatureStats.load(path)
    with open(path, "wb") as f:
        f.write(b"not a zip file")
    with pytest.raises(ValueError):
        FeatureStats.load(path)


def test_fd_refuses_statistics_of_different_extractors_and_states_counts():
    rng = np.random.default_rng(6)
    a = stats_from_features(rng.standard_normal((40, 3)), "net@aaa", "mnist", "test[:50%]")
    b = stats_from_features(rng.standard_normal((30, 3)), "net@bbb", "mnist", "test[50%:]")
    with pytest.raises(ValueError, match="different feature extractors"):
        frechet_distance(a, b)
    r = frechet_distance(a, b, allow_mixed_extractors=True)
    assert (r.count_a, r.count_b) == (40, 30)
    assert "n=40 mnist test[:50%]" in r.description and "n=30" in r.description


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="NaN"):
        StatsAccumulator().update(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="at least 2"):
        StatsAccumulator().update(np.ones((1, 3))).result()
    with pytest.raises(ValueError, match="one D"):
        gaussian_frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
