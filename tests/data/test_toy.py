"""Tests for the 2-D toy distributions."""

import numpy as np
import pytest

from jaxgen.data import toy
from jaxgen.errors import DataError

N = 100_000


@pytest.mark.parametrize("name", toy.TOY_DISTRIBUTIONS)
def test_shape_dtype_determinism_and_scale(name):
    x = toy.sample(name, 3, N)
    assert x.shape == (N, 2) and x.dtype == np.float32
    assert np.all(np.isfinite(x))
    np.testing.assert_array_equal(x, toy.sample(name, 3, N))
    assert not np.allclose(x[:100], toy.sample(name, 4, 100))
    # Documented scale: centred, E||x||^2 = 2.
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.02)
    assert abs(np.mean(np.sum(x.astype(np.float64) ** 2, axis=1)) - 2.0) < 0.03


@pytest.mark.parametrize("name", toy.TOY_DISTRIBUTIONS)
def test_samples_depend_only_on_seed_and_position(name):
    full = toy.sample(name, 7, 50)
    np.testing.assert_array_equal(toy.sample(name, 7, 20, start=30), full[30:])
    positions = np.array([49, 0, 17, 17])
    np.testing.assert_array_equal(toy.sample_at(name, 7, positions), full[positions])
    np.testing.assert_array_equal(toy.ToySource(name).sample_at(7, positions), full[positions])


@pytest.mark.parametrize("name", toy.MIXTURES)
def test_mixture_moments_match_params(name):
    weights, means, stds = toy.mixture_params(name)
    assert weights.shape == stds.shape == means.shape[:1] and means.shape[1] == 2
    np.testing.assert_allclose(weights.sum(), 1.0)
    x = toy.sample(name, 0, N).astype(np.float64)
    mean = weights @ means
    cov = np.einsum("k,ki,kj->ij", weights, means, means) + np.sum(weights * stds**2) * np.eye(2)
    cov -= np.outer(mean, mean)
    # Documented scale, exactly: centred with identity covariance.
    np.testing.assert_allclose(mean, 0.0, atol=1e-12)
    np.testing.assert_allclose(cov, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=0.015)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.02)
    # Each component is hit with its weight and has its std around its mean.
    comp = np.argmin(np.sum((x[:, None] - means[None]) ** 2, axis=-1), axis=1)
    np.testing.assert_allclose(np.bincount(comp, minlength=len(weights)) / N, weights, atol=0.01)
    resid = x - means[comp]
    np.testing.assert_allclose(resid.std(axis=0), stds[0], rtol=0.03)


def test_mixture_params_reject_non_mixtures():
    with pytest.raises(DataError, match="not a Gaussian mixture"):
        toy.mixture_params("moons")


@pytest.mark.parametrize("name", toy.HAS_LOG_PROB)
def test_log_prob_integrates_to_one(name):
    h = 0.01
    grid = np.arange(-4.0, 4.0, h) + h / 2
    gx, gy = np.meshgrid(grid, grid, indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel()], axis=-1)
    total = np.exp(toy.log_prob(name, pts)).sum() * h * h
    # The checkerboard's cell edges do not fall on grid lines, which costs
    # O(h * perimeter) of accuracy; a wrong density would be off by >= 10%.
    assert abs(total - 1.0) < (5e-3 if name == "checkerboard" else 1e-3)


@pytest.mark.parametrize("name", toy.MIXTURES)
def test_log_prob_matches_direct_mixture_density(name):
    weights, means, stds = toy.mixture_params(name)
    x = toy.sample(name, 1, 50).astype(np.float64)
    dens = sum(
        w * np.exp(-np.sum((x - m) ** 2, axis=1) / (2 * s**2)) / (2 * np.pi * s**2)
        for w, m, s in zip(weights, means, stds)
    )
    np.testing.assert_allclose(toy.log_prob(name, x), np.log(dens), rtol=1e-10)


def test_checkerboard_support_and_density():
    x = toy.sample("checkerboard", 0, 10_000)
    lp = toy.log_prob("checkerboard", x)
    np.testing.assert_allclose(lp, -np.log(6.0))  # area of support = 6
    outside = np.array([[0.1, -0.1], [-0.1, 0.1], [2.0, 0.0], [0.0, -1.8]])
    assert np.all(np.isneginf(toy.log_prob("checkerboard", outside)))


def test_unknown_names_and_missing_log_prob():
    with pytest.raises(DataError, match="unknown toy distribution 'spiral'"):
        toy.sample("spiral", 0, 4)
    with pytest.raises(DataError, match="unknown toy distribution"):
        toy.ToySource("nope")
    with pytest.raises(DataError, match="no closed-form log_prob"):
        toy.log_prob("swissroll", np.zeros((1, 2)))


def test_hash_uniform_is_uniform_and_key_dependent():
    u = toy.hash_uniform(np.arange(200_000), 5, 1)
    assert np.all((u > 0) & (u < 1))
    np.testing.assert_allclose(u.mean(), 0.5, atol=0.005)
    np.testing.assert_allclose(np.histogram(u, bins=10, range=(0, 1))[0] / u.size, 0.1, atol=0.005)
    v = toy.hash_uniform(np.arange(200_000), 6, 1)
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.01
