"""Sliced Wasserstein and mode coverage on toy data with known answers."""

import numpy as np
import pytest
import scipy.stats

from jaxgen.data import toy
from jaxgen.metrics import mode_coverage, sliced_wasserstein, toy_mode_coverage, wasserstein_1d


def test_wasserstein_1d_matches_scipy_for_unequal_sizes_and_sorted_pairs_for_equal():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(37), 2 * rng.standard_normal(23) + 1
    np.testing.assert_allclose(wasserstein_1d(x, y, p=1), scipy.stats.wasserstein_distance(x, y),
                               rtol=1e-12)
    a, b = rng.standard_normal(40), rng.standard_normal(40) + 0.5
    np.testing.assert_allclose(wasserstein_1d(a, b, p=2), np.mean((np.sort(a) - np.sort(b)) ** 2),
                               rtol=1e-12)


def test_sliced_wasserstein_of_shifted_gaussians_is_the_projected_shift():
    # SW_2^2 = E_theta (theta . delta)^2 = ||delta||^2 / D for theta uniform on the sphere.
    rng = np.random.default_rng(1)
    d, n = 3, 4000
    delta = np.array([1.5, 0.0, 0.0])
    x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d)) + delta
    got = sliced_wasserstein(x, y, num_projections=500)
    np.testing.assert_allclose(got, np.linalg.norm(delta) / np.sqrt(d), rtol=0.05)
    same = sliced_wasserstein(x, rng.standard_normal((n, d)), num_projections=500)
    assert same < 0.1 < got


def mixture_samples(rng, means, std, modes, n):
    comp = rng.choice(modes, size=n)
    return means[comp] + std * rng.standard_normal((n, means.shape[1]))


def test_mode_coverage_counts_the_modes_a_model_samples_from():
    # The ring of Metz et al. 2017: 8 modes on a circle of radius 2, std 0.02.
    angles = np.arange(8) * 2 * np.pi / 8
    means = 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    rng = np.random.default_rng(2)
    for modes in ([0], [1, 4, 6], [0, 1, 2, 3, 5], list(range(8))):
        x = mixture_samples(rng, means, 0.02, modes, 4000)
        r = mode_coverage(x, means, 0.02)
        assert r.modes_covered == len(modes), (modes, r)
        assert set(np.flatnonzero(r.counts)) == set(modes)
        # In 2-D, P(||z|| <= 3) = 1 - exp(-9/2) = 0.9889 for each mode.
        assert abs(r.high_quality_fraction - (1 - np.exp(-4.5))) < 0.006
        # Balanced over |modes| of 8 equally weighted modes: KL = log(8 / |modes|).
        assert abs(r.kl_to_weights - np.log(8 / len(modes))) < 0.01


def test_toy_8gaussians_needs_min_count_because_its_mode_discs_nearly_touch():
    # jaxgen's '8gaussians' (std = radius / 8) puts neighbouring modes 6.1 std apart,
    # so a few samples of one mode fall within 3 std of its neighbour.
    _, means, stds = toy.mixture_params("8gaussians")
    rng = np.random.default_rng(5)
    x = mixture_samples(rng, means, stds[0], [0, 3], 4000)
    strict = toy_mode_coverage("8gaussians", x)
    robust = toy_mode_coverage("8gaussians", x, min_count=20)
    assert robust.modes_covered == 2
    assert strict.modes_covered >= 2 and strict.counts[[0, 3]].min() > 1900


def test_mode_coverage_quality_and_min_count():
    _, means, stds = toy.mixture_params("25gaussians")
    rng = np.random.default_rng(3)
    good = mixture_samples(rng, means, stds[0], np.arange(25), 2500)
    blurry = mixture_samples(rng, means, 10 * stds[0], np.arange(25), 2500)  # too wide
    r_good = toy_mode_coverage("25gaussians", good)
    r_blurry = toy_mode_coverage("25gaussians", blurry)
    assert r_good.modes_covered == 25 and r_good.high_quality_fraction > 0.97
    assert r_blurry.high_quality_fraction < 0.35
    # Two stray high-quality samples on mode 7 count as covered only with min_count 1.
    few = np.concatenate([mixture_samples(rng, means, stds[0], [3], 500), means[[7, 7]]])
    assert mode_coverage(few, means, stds).modes_covered == 2
    assert mode_coverage(few, means, stds, min_count=10).modes_covered == 1
    assert "2/25 modes covered" in mode_coverage(few, means, stds).description


def test_mode_coverage_rejects_bad_input():
    with pytest.raises(ValueError, match="share D"):
        mode_coverage(np.zeros((4, 3)), np.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match="Gaussian mixture"):
        toy_mode_coverage("moons", np.zeros((4, 2)))
