"""Gaussian latents: the analytic KL against Monte Carlo, and where gradients flow."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import vae

MEAN = np.array([[0.5, -1.0, 0.0], [2.0, 0.3, -0.4]], np.float32)
LOGVAR = np.array([[0.0, -1.0, 0.7], [-2.0, 0.5, 0.1]], np.float32)


@pytest.mark.parametrize("prior_mean, prior_logvar", [
    (0.0, 0.0), (np.array([[0.3, -0.5, 1.0]], np.float32), np.array([[0.5, -0.3, 1.2]],
                                                                    np.float32))])
def test_analytic_kl_matches_monte_carlo(prior_mean, prior_logvar):
    n = 100_000

    @jax.jit
    def mc(rng):
        z = jax.vmap(lambda k: vae.sample_gaussian(k, MEAN, LOGVAR))(jax.random.split(rng, n))
        log_ratio = jax.vmap(lambda z: vae.gaussian_log_prob(z, MEAN, LOGVAR)
                             - vae.gaussian_log_prob(z, prior_mean, prior_logvar))(z)
        return log_ratio.mean(0), log_ratio.std(0) / math.sqrt(n)

    estimate, se = mc(jax.random.key(0))
    kl = vae.gaussian_kl(MEAN, LOGVAR, prior_mean, prior_logvar)
    assert np.all(np.abs(estimate - kl) < 4 * se), (estimate, kl, se)
    if np.ndim(prior_mean) == 0:   # the lectures' closed form
        np.testing.assert_allclose(kl, 0.5 * np.sum(MEAN ** 2 + np.exp(LOGVAR) - 1 - LOGVAR, 1),
                                   rtol=1e-6)
    assert np.all(vae.gaussian_kl(MEAN, LOGVAR, MEAN, LOGVAR) == 0)


def test_gradients_flow_through_the_sample_and_not_the_noise():
    eps = jax.random.normal(jax.random.key(1), MEAN.shape)

    def f(mean, logvar, eps):
        return jnp.sum(vae.reparameterize(mean, logvar, eps))

    g_mean, g_logvar, g_eps = jax.grad(f, argnums=(0, 1, 2))(jnp.asarray(MEAN),
                                                            jnp.asarray(LOGVAR), eps)
    np.testing.assert_allclose(g_mean, 1.0)
    np.testing.assert_allclose(g_logvar, 0.5 * np.exp(0.5 * LOGVAR) * eps, rtol=1e-6)
    np.testing.assert_array_equal(g_eps, 0.0)
    # The pathwise estimate of d/dtheta E_q[z^2] (= 2 mu and exp(logvar)) is unbiased.
    n = 50_000

    @jax.jit
    def pathwise(mean, logvar):
        def objective(m, lv):
            z = jax.vmap(lambda k: vae.sample_gaussian(k, m, lv))(
                jax.random.split(jax.random.key(2), n))
            return jnp.sum(jnp.mean(z ** 2, axis=0))
        return jax.grad(objective, argnums=(0, 1))(mean, logvar)

    gm, glv = pathwise(jnp.asarray(MEAN), jnp.asarray(LOGVAR))
    np.testing.assert_allclose(gm, 2 * MEAN, atol=0.05)
    np.testing.assert_allclose(glv, np.exp(LOGVAR), rtol=0.05)


def test_noise_of_an_example_does_not_depend_on_the_batch():
    draw = jax.jit(lambda rng: (vae.sample_gaussian(rng, jnp.zeros((5, 4)), jnp.zeros((5, 4))),
                                vae.sample_gaussian(rng, jnp.zeros((2, 4)), jnp.zeros((2, 4)))))
    big, small = draw(jax.random.key(3))
    np.testing.assert_array_equal(big[:2], small)


def test_bad_latent_shapes_are_refused():
    with pytest.raises(ValueError, match="logvar must have the shape"):
        vae.gaussian_kl(MEAN, LOGVAR[:, :2])
    with pytest.raises(ValueError, match="latent axis"):
        vae.gaussian_kl(MEAN[0], LOGVAR[0])
    with pytest.raises(ValueError, match="does not line up"):
        vae.gaussian_kl(MEAN, LOGVAR, prior_mean=np.zeros(3, np.float32))
