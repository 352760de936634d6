"""Decoder likelihoods: closed forms, normalisation, and clear errors for data they do not
model."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import vae


def test_bernoulli_is_the_binary_cross_entropy_and_refuses_grey_data():
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(3, 4, 4, 1)) < 0.5).astype(np.float32)
    logits = rng.normal(size=x.shape).astype(np.float32) * 4
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))
    np.testing.assert_allclose(vae.bernoulli_log_likelihood(x, logits), expected, rtol=1e-5)
    # finite for extreme logits
    assert np.all(np.isfinite(vae.bernoulli_log_likelihood(x, 1e4 * (2 * x - 1) - 1e4)))
    with pytest.raises(ValueError, match=r"binary data in \{0, 1\}, got 0.5"):
        vae.bernoulli_log_likelihood(np.full((2, 3), 0.5, np.float32), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"binary.*got -1.0"):  # [-1, 1] images, not binarized
        vae.decoder_log_likelihood("bernoulli", -np.ones((2, 3), np.float32), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="another image shape"):
        vae.bernoulli_log_likelihood(x, logits[:, :2])


def test_gaussian_with_fixed_and_learned_variance():
    rng = np.random.default_rng(1)
    x, mean, logvar = (rng.normal(size=(2, 5)).astype(np.float32) for _ in range(3))
    expected = lambda lv: np.sum(-0.5 * (np.log(2 * np.pi) + lv  # noqa: E731
                                         + (x - mean) ** 2 / np.exp(lv)), axis=1)
    np.testing.assert_allclose(vae.decoder_log_likelihood("gaussian", x, mean, logvar=-1.0),
                               expected(-1.0), rtol=1e-5)
    out = np.concatenate([mean, logvar], axis=-1)
    np.testing.assert_allclose(vae.decoder_log_likelihood("gaussian", x, out),
                               expected(logvar), rtol=1e-5)
    with pytest.raises(ValueError, match=r"two parameters per value, shape \(2, 10\)"):
        vae.decoder_log_likelihood("gaussian", x, mean)
    assert vae.num_decoder_params("gaussian", True) == 2
    assert vae.num_decoder_params("gaussian") == vae.num_decoder_params("bernoulli") == 1


@pytest.mark.parametrize("mean, log_scale", [(0.0, -3.0), (0.9, -5.0), (-0.99, -7.0),
                                             (0.3, 1.0), (3.0, -4.0)])
def test_discretized_logistic_is_a_distribution_over_the_256_levels(mean, log_scale):
    grid = (np.arange(256, dtype=np.float32) / 127.5 - 1.0)[:, None]
    logp = vae.discretized_logistic_log_likelihood(
        grid, np.full_like(grid, mean), np.full_like(grid, log_scale))
    assert np.all(np.isfinite(logp))
    assert float(jax.scipy.special.logsumexp(logp)) == pytest.approx(0.0, abs=1e-4)
    # an interior bin is the CDF difference of the logistic
    sig = lambda y: np.exp(-np.logaddexp(0.0, -y))  # noqa: E731  (stable logistic CDF)
    k = 100
    s = math.exp(log_scale)
    direct = sig((grid[k, 0] + 1 / 255 - mean) / s) - sig((grid[k, 0] - 1 / 255 - mean) / s)
    if direct > 1e-6:
        assert float(logp[k]) == pytest.approx(math.log(direct), rel=1e-3)


def test_discretized_logistic_refuses_continuous_data():
    with pytest.raises(ValueError, match="256-level grid"):
        vae.discretized_logistic_log_likelihood(np.full((1, 2), 0.1234, np.float32),
                                                np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"must be in \[-1"):
        vae.discretized_logistic_log_likelihood(np.full((1, 2), 2.0, np.float32),
                                                np.zeros((1, 2)), np.zeros((1, 2)))


def test_binarize_draws_bernoulli_of_the_intensity():
    x = jnp.broadcast_to(jnp.linspace(-1, 1, 5)[:, None], (5, 4000))
    b = vae.binarize(jax.random.key(0), x)
    assert set(np.unique(b)) <= {0.0, 1.0}
    np.testing.assert_allclose(b.mean(1), (np.linspace(-1, 1, 5) + 1) / 2, atol=0.03)
    np.testing.assert_array_equal(b, vae.binarize(jax.random.key(0), x))  # fixed key: fixed
    assert not np.array_equal(b, vae.binarize(jax.random.key(1), x))
    with pytest.raises(ValueError, match=r"binarize: x must be in \[-1"):
        vae.binarize(jax.random.key(0), jnp.full((2, 2), 3.0))
