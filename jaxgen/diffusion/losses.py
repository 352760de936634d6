"""Denoising objectives. Losses are unreduced: one value per example."""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

from jaxgen.diffusion import schedules, targets


def per_example_keys(rng: chex.PRNGKey, batch_size: int, offset=0) -> chex.Array:
    """One key per example, folded from its position, so that an example's randomness
    does not depend on the batch size or on how the batch is split across devices."""
    return jax.vmap(lambda i: jax.random.fold_in(rng, i))(offset + jnp.arange(batch_size))


def denoising_loss(model_fn: Callable, process: schedules.DDPMProcess, x0: chex.Array,
                   rng: chex.PRNGKey, *, prediction: str = "eps") -> chex.Array:
    """L_simple of Ho et al. (2020), Eq. 14, generalised to any prediction target.

    Draws t ~ U{0..T-1} and z ~ N(0, I) per example, forms x_t in closed form and
    regresses ``model_fn(x_t, t)`` on the target (eps: z, x0: x_0, v: alpha z - sigma x_0).

    Args:
      model_fn: (x_t (B, ...), t (B,) int32) -> prediction (B, ...).
      process: the discrete process.
      x0: clean data, (B, ...) float.
      rng: PRNG key.
      prediction: 'eps', 'x0' or 'v'.

    Returns:
      (B,) mean squared error over the non-batch dimensions.
    """
    targets._check(prediction)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        raise ValueError(f"x0 must be a float array (images scaled to [-1, 1]), got {x0.dtype}")
    batch = x0.shape[0]
    keys = per_example_keys(rng, batch)

    def draw(key):
        k_t, k_z = jax.random.split(key)
        t = jax.random.randint(k_t, (), 0, process.num_timesteps)
        return t, jax.random.normal(k_z, x0.shape[1:], x0.dtype)

    t, noise = jax.vmap(draw)(keys)
    x_t = schedules.q_sample(process, x0, t, noise)
    alpha = schedules._expand(process.alpha(t), x0)
    sigma = schedules._expand(process.sigma(t), x0)
    pred = model_fn(x_t, t)
    if pred.shape != x0.shape:
        raise ValueError(f"model_fn returned shape {pred.shape}, expected {x0.shape}")
    err = pred - targets.target(prediction, x0, noise, alpha, sigma)
    return jnp.mean(jnp.square(err), axis=tuple(range(1, x0.ndim)))
