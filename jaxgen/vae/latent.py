"""Diagonal-Gaussian latents: the reparameterization trick, log-densities and KL.

The encoder of a VAE (Kingma & Welling 2014, "Auto-Encoding Variational Bayes") outputs
q(z|x) = N(mu, diag(sigma^2)), parameterised by ``mean`` and ``logvar = log sigma^2``.
Every function reduces over all non-batch axes, so a latent may be a vector (B, L) or a
feature map (B, h, w, c) as in latent diffusion's autoencoder.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from jaxgen.core import checks
from jaxgen.core.gaussians import gaussian_log_likelihood, normal_kl
from jaxgen.core.rng import initial_noise


def _check_pair(mean, logvar, what: str = "mean") -> None:
    checks.check_float_array(what, mean)
    if jnp.ndim(mean) < 2:
        raise ValueError(f"{what} must be (B, ...) with a batch axis and at least one latent "
                         f"axis, got shape {tuple(jnp.shape(mean))}")
    if jnp.shape(logvar) != jnp.shape(mean):
        raise ValueError(f"logvar must have the shape of {what} {tuple(jnp.shape(mean))}, "
                         f"got {tuple(jnp.shape(logvar))}")


def sum_per_example(x: chex.Array) -> chex.Array:
    """Sums (B, ...) over every axis but the first: (B,)."""
    return jnp.sum(jnp.reshape(x, (x.shape[0], -1)), axis=1)


def reparameterize(mean: chex.Array, logvar: chex.Array, eps: chex.Array) -> chex.Array:
    """z = mean + exp(logvar / 2) * eps: a sample of N(mean, exp(logvar)) as a
    differentiable function of (mean, logvar) (Kingma & Welling 2014, Sec. 2.4).

    The noise is a constant of the estimator: gradients flow into ``mean`` and ``logvar``
    (dz/dmean = 1, dz/dlogvar = (z - mean) / 2) and never into ``eps``, even when the
    caller computed it from something differentiable.

    Args:
      mean, logvar: (B, ...) parameters of q.
      eps: standard normal noise of the same shape.

    Returns:
      z, same shape.
    """
    _check_pair(mean, logvar)
    checks.check_same_shape("eps", eps, "mean", mean)
    return mean + jnp.exp(0.5 * logvar) * jax.lax.stop_gradient(eps)


def sample_gaussian(rng: chex.PRNGKey, mean: chex.Array, logvar: chex.Array) -> chex.Array:
    """One reparameterized sample per example; example b's noise comes from
    ``fold_in(rng, b)`` alone, so it does not depend on the batch size or sharding."""
    return reparameterize(mean, logvar, initial_noise(rng, jnp.shape(mean), mean.dtype))


def gaussian_log_prob(z: chex.Array, mean: chex.Array = 0.0,
                      logvar: chex.Array = 0.0) -> chex.Array:
    """log N(z; mean, diag(exp(logvar))) summed over the latent axes: (B,) nats.

    The defaults give the standard normal prior log p(z).
    """
    checks.check_float_array("z", z)
    checks.check_batched("z", z)
    checks.check_coefficient("mean", mean, "z", z)
    checks.check_coefficient("logvar", logvar, "z", z)
    return sum_per_example(jnp.broadcast_to(gaussian_log_likelihood(z, mean, logvar),
                                            jnp.shape(z)))


def gaussian_kl(mean: chex.Array, logvar: chex.Array, prior_mean: chex.Array = 0.0,
                prior_logvar: chex.Array = 0.0) -> chex.Array:
    """Analytic KL(N(mean, exp(logvar)) || N(prior_mean, exp(prior_logvar))) per example.

    With the default standard normal prior this is the lectures' (and Kingma & Welling's
    Appendix B) closed form 1/2 sum_d (mu_d^2 + sigma_d^2 - 1 - log sigma_d^2); a
    non-standard diagonal prior (scalars, or arrays broadcastable to ``mean``) gives
    1/2 sum_d (sigma_d^2 / s_d^2 - 1 - log(sigma_d^2 / s_d^2) + (mu_d - m_d)^2 / s_d^2).

    Args:
      mean, logvar: (B, ...) posterior parameters.
      prior_mean, prior_logvar: the prior's parameters.

    Returns:
      (B,) KL in nats, >= 0.
    """
    _check_pair(mean, logvar)
    checks.check_coefficient("prior_mean", prior_mean, "mean", mean)
    checks.check_coefficient("prior_logvar", prior_logvar, "mean", mean)
    kl = normal_kl(mean, logvar, prior_mean, prior_logvar)
    return sum_per_example(jnp.broadcast_to(kl, jnp.shape(mean)))
