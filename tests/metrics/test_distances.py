"""Energy distance and MMD: against naive float64 numpy, under the null and a shift."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.metrics import energy_distance, median_distance, mmd_rbf


def np_pairwise(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def np_u_statistic(x, y, k):
    """E k(X,X') + E k(Y,Y') - 2 E k(X,Y), within-sample means over i != j, in float64."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    n, m = len(x), len(y)
    kxx, kyy = k(np_pairwise(x, x)), k(np_pairwise(y, y))
    off = lambda K: (K.sum() - np.trace(K)) / (len(K) * (len(K) - 1))
    return off(kxx) + off(kyy) - 2 * k(np_pairwise(x, y)).sum() / (n * m)


def np_energy(x, y):
    return np_u_statistic(x, y, lambda d: -d)


def np_mmd(x, y, h):
    return np_u_statistic(x, y, lambda d: sum(np.exp(-d ** 2 / (2 * b ** 2)) for b in h))


def small_pair(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(61, 3)).astype(np.float32)
    y = (1.5 * rng.normal(size=(47, 3)) + [0.8, 0.0, -0.5]).astype(np.float32)
    return x, y


def test_energy_distance_matches_naive_numpy():
    x, y = small_pair()
    want = np_energy(x, y)
    assert want > 0.1  # the pair differs, so 1e-5 relative is a meaningful tolerance
    np.testing.assert_allclose(float(energy_distance(x, y)), want, rtol=1e-5)


def test_mmd_matches_naive_numpy_with_given_and_median_bandwidths():
    x, y = small_pair()
    np.testing.assert_allclose(float(mmd_rbf(x, y, (0.7, 2.0))), np_mmd(x, y, (0.7, 2.0)),
                               rtol=1e-5)
    z = np.concatenate([x, y]).astype(np.float64)
    d = np_pairwise(z, z)[np.triu_indices(len(z), 1)]
    med = np.median(d)
    np.testing.assert_allclose(float(median_distance(x, y)), med, rtol=1e-5)
    want = np_mmd(x, y, med * np.array([0.5, 1.0, 2.0]))
    assert want > 0.05
    np.testing.assert_allclose(float(mmd_rbf(x, y)), want, rtol=1e-5)


def test_chunk_size_does_not_change_the_value():
    x, y = small_pair()  # n = 61, m = 47: the default chunk (256) takes each in one block
    for f in (energy_distance, mmd_rbf):
        # 13 divides neither: the last block is padded and its padding must be masked.
        # Only the float32 summation order differs.
        np.testing.assert_allclose(float(f(x, y, chunk_size=13)), float(f(x, y)), rtol=1e-5,
                                   err_msg=f.__name__)


def permutation_stats(f, x, y, num, seed):
    """f on random re-splits of the pooled sample: draws from the null distribution."""
    z = np.concatenate([x, y])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num):
        p = rng.permutation(len(z))
        out.append(float(f(z[p[:len(x)]], z[p[len(x):]])))
    return np.array(out)


@pytest.mark.parametrize("name", ["energy", "mmd"])
def test_same_distribution_is_near_zero_and_a_small_shift_is_detected(name):
    n = 2000
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = rng.normal(size=(n, 2)).astype(np.float32)
    if name == "energy":
        f = stat = energy_distance
    else:
        # The permutation draws reuse one kernel (the standard permutation test); the
        # statistics under test use the default median-heuristic bandwidths.
        h = median_distance(x, y) * jnp.array([0.5, 1.0, 2.0])
        f, stat = (lambda a, b: mmd_rbf(a, b, h)), mmd_rbf
    null = permutation_stats(f, x, y, 30, seed=3)
    floor = null.std()
    # Unbiased: the null draws average to 0. A V-statistic (diagonal included, divided by
    # n^2) would sit ~2 (k(x, x) - E k(X, X')) / n above 0, over 10 standard errors here.
    assert abs(null.mean()) < 4 * floor / np.sqrt(len(null))
    # The null law is a weighted chi-square, skewed right: its 99.9% point is ~5 stds.
    assert abs(float(stat(x, y))) < 6 * floor
    shifted = float(stat(x, y + np.array([0.2, 0.0], np.float32)))
    assert shifted > 10 * floor


def test_null_noise_floor_falls_like_one_over_n():
    # A degenerate U-statistic: std ~ 1/n under the null (1/sqrt(n) would give a ratio of 2).
    reps = 60
    stds = []
    for n in (200, 800):
        xs = np.asarray(jax.random.normal(jax.random.key(n), (reps, 2, n, 2)))
        stds.append(np.std([float(energy_distance(a, b)) for a, b in xs]))
    assert 2.6 < stds[0] / stds[1] < 6.0, stds


def test_jittable_and_gradient_is_finite_at_coincident_points():
    x, y = small_pair()
    x = np.concatenate([x, x[:3]])  # repeated rows: zero distances within x
    y = np.concatenate([y, x[:2]])  # and between x and y
    grad = jax.jit(jax.grad(lambda a: energy_distance(a, y, chunk_size=16)))(x)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_invalid_inputs_raise_value_errors():
    x = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match="same feature size"):
        energy_distance(x, np.zeros((10, 3), np.float32))
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd_rbf(x, np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match=r"shape \(n, D\)"):
        energy_distance(np.zeros(10), x)
    with pytest.raises(ValueError, match="chunk_size"):
        energy_distance(x, x, chunk_size=0)
    with pytest.raises(ValueError, match="bandwidths"):
        mmd_rbf(x, x, np.ones((2, 2)))
