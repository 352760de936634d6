"""Samplers for diffusion processes, each compiled as a single ``lax.scan``.

A sampler takes ``model_fn(x_t, t) -> prediction``; any callable works (a Flax
``apply`` closure, an Equinox module, an exact analytic denoiser in a test).
"""

from __future__ import annotations

from typing import Callable, Optional

import chex
import jax
import jax.numpy as jnp

from jaxgen.diffusion import schedules, targets
from jaxgen.diffusion.losses import per_example_keys

METHODS = ("ddpm",)


def initial_noise(rng: chex.PRNGKey, shape, dtype=jnp.float32) -> chex.Array:
    """x_T ~ N(0, I) of ``shape`` (B, ...), drawn per example: sample i is the same
    whatever the batch size it is drawn in."""
    keys = per_example_keys(rng, shape[0])
    return jax.vmap(lambda k: jax.random.normal(k, shape[1:], dtype))(keys)


def ddpm_sample(model_fn: Callable, process: schedules.DDPMProcess, x_T: chex.Array,
                rng: chex.PRNGKey, *, prediction: str = "eps", variance: str = "beta",
                clip_x0: Optional[float] = None, return_trajectory: bool = False):
    """Ancestral sampling, Ho et al. (2020) Algorithm 2, for t = T-1 .. 0.

    x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_t) + sigma_t z,
    with z = 0 at the last step. With ``clip_x0`` (or a non-eps target) the mean is
    computed as the posterior mean mu~(x_t, x0_hat) (Ho et al. Eq. 7) from the
    implied x_0 estimate, clipped to [-clip_x0, clip_x0]: the same mean when nothing
    is clipped.

    Args:
      model_fn: (x_t (B, ...), t (B,) int32) -> prediction (B, ...).
      process: the discrete process.
      x_T: (B, ...) starting noise, e.g. ``initial_noise``.
      rng: PRNG key; step t of example i uses fold_in(fold_in(rng, i), t).
      prediction: what model_fn predicts: 'eps', 'x0' or 'v'.
      variance: sigma_t^2 = 'beta' or 'beta_tilde'.
      clip_x0: clip the x_0 estimate to this magnitude (e.g. 1.0 for images in [-1, 1]).
      return_trajectory: also return all intermediate x_t, shape (T, B, ...).

    Returns:
      x_0 of shape (B, ...), or (x_0, trajectory).
    """
    targets._check(prediction)
    if x_T.ndim < 2:
        raise ValueError(f"x_T must have a batch dimension, got shape {x_T.shape}")
    batch = x_T.shape[0]
    keys = per_example_keys(rng, batch)
    betas = process.betas
    alphas = process.alphas
    abar = process.alpha_bars
    abar_prev = process.alpha_bars_prev()
    one_m_abar = process.one_minus_alpha_bars
    one_m_abar_prev = process.one_minus_alpha_bars_prev()
    var = process.posterior_variance(variance)
    algorithm2 = prediction == "eps" and clip_x0 is None

    def step(x, t):
        pred = model_fn(x, jnp.full((batch,), t, jnp.int32))
        if algorithm2:
            mean = (x - betas[t] / jnp.sqrt(one_m_abar[t]) * pred) / jnp.sqrt(alphas[t])
        else:
            x0 = targets.to_x0(prediction, pred, x, jnp.sqrt(abar[t]), jnp.sqrt(one_m_abar[t]))
            if clip_x0 is not None:
                x0 = jnp.clip(x0, -clip_x0, clip_x0)
            c0 = betas[t] * jnp.sqrt(abar_prev[t]) / one_m_abar[t]
            ct = one_m_abar_prev[t] * jnp.sqrt(alphas[t]) / one_m_abar[t]
            mean = c0 * x0 + ct * x
        z = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, t), x.shape[1:], x.dtype))(keys)
        x = mean + jnp.where(t > 0, jnp.sqrt(var[t]), 0.0).astype(x.dtype) * z
        return x, (x if return_trajectory else None)

    ts = jnp.arange(process.num_timesteps - 1, -1, -1, dtype=jnp.int32)
    x0, traj = jax.lax.scan(step, x_T, ts)
    return (x0, traj) if return_trajectory else x0


def sample(model_fn: Callable, process, x_T: chex.Array, rng: chex.PRNGKey, *,
           method: str = "ddpm", **kwargs):
    """Runs the sampler named ``method`` from x_T and returns x_0 (see each sampler)."""
    if method == "ddpm":
        return ddpm_sample(model_fn, process, x_T, rng, **kwargs)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
