"""Regularisers of the discriminator: the WGAN-GP gradient penalty, R1, weight clipping;
and the optimal discriminator of the minimax game.

The penalties take ``critic_fn(x (B, ...)) -> (B,)`` and differentiate the sum of its
outputs: that gives each example's own input gradient only when the critic treats the
examples of a batch independently (no batch normalisation in training mode, which is why
Gulrajani et al. 2017, sec. 4, use layer normalisation in a penalised critic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["interpolates", "gradient_penalty", "r1_penalty", "clip_weights",
           "optimal_discriminator"]


def _per_example_grad(critic_fn, x):
    def total(v):
        out = critic_fn(v)
        if out.shape != (x.shape[0],):
            raise ValueError(f"critic_fn must map (B, ...) to (B,), got {tuple(out.shape)} for "
                             f"input {tuple(x.shape)}")
        return jnp.sum(out)

    return jax.grad(total)(x)


def _norms(g):
    return jnp.sqrt(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=-1))


def interpolates(real, fake, rng):
    """``x_hat = eps x + (1 - eps) x_tilde`` with ``eps ~ U[0, 1]`` per example (Gulrajani
    et al. 2017, Algorithm 1, line 6).

    Args:
      real, fake: (B, ...) real and generated examples of one shape.
      rng: key; example i uses ``fold_in(rng, i)``, so its eps does not depend on B.

    Returns:
      (B, ...) interpolates.
    """
    real, fake = jnp.asarray(real), jnp.asarray(fake)
    if real.shape != fake.shape or real.ndim < 2:
        raise ValueError(f"real and fake must share a shape (B, ...), got {real.shape} and "
                         f"{fake.shape}")
    keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(real.shape[0]))
    eps = jax.vmap(lambda k: jax.random.uniform(k, (), real.dtype))(keys)
    eps = eps.reshape((-1,) + (1,) * (real.ndim - 1))
    return eps * real + (1.0 - eps) * fake


def gradient_penalty(critic_fn, real, fake, rng, target: float = 1.0):
    """``(||grad_x D(x_hat)||_2 - 1)^2`` on random interpolates (Gulrajani et al. 2017,
    eq. 3; the caller multiplies by lambda = 10).

    Args:
      critic_fn: (B, ...) -> (B,) critic values, examples treated independently.
      real, fake: (B, ...) examples.
      rng: key of the interpolation weights (see ``interpolates``).
      target: the gradient norm aimed at (1 for a 1-Lipschitz critic).

    Returns:
      (B,) per-example penalties.
    """
    x_hat = interpolates(real, fake, rng)
    return jnp.square(_norms(_per_example_grad(critic_fn, x_hat)) - target)


def r1_penalty(disc_fn, real):
    """``||grad_x D(x)||^2`` on real data (Mescheder et al. 2018, eq. 9; the caller
    multiplies by gamma / 2).

    Args:
      disc_fn: (B, ...) -> (B,) discriminator outputs (logits), examples independent.
      real: (B, ...) real examples.

    Returns:
      (B,) per-example squared gradient norms.
    """
    real = jnp.asarray(real)
    if real.ndim < 2:
        raise ValueError(f"real must have shape (B, ...), got {real.shape}")
    return jnp.sum(jnp.square(_per_example_grad(disc_fn, real).reshape(real.shape[0], -1)),
                   axis=-1)


def clip_weights(params, clip_value: float):
    """Projects every floating-point leaf of ``params`` onto ``[-c, c]`` (Arjovsky et al.
    2017, Algorithm 1, line 7). The optimizer transform that applies it after each critic
    update is ``jaxgen.train.gan.weight_clipping``."""
    if not clip_value > 0:
        raise ValueError(f"clip_value must be > 0, got {clip_value}")
    return jax.tree.map(lambda p: jnp.clip(p, -clip_value, clip_value)
                        if jnp.issubdtype(jnp.result_type(p), jnp.floating) else p, params)


def optimal_discriminator(p_data, p_g):
    """``D*(x) = p_data(x) / (p_data(x) + p_G(x))`` (Goodfellow et al. 2014, Proposition 1),
    the maximiser of the minimax value for a fixed generator.

    Args:
      p_data, p_g: densities at the same points, any matching shape, not both zero.

    Returns:
      D* at those points.
    """
    p_data, p_g = jnp.asarray(p_data), jnp.asarray(p_g)
    if p_data.shape != p_g.shape:
        raise ValueError(f"p_data and p_g must have one shape, got {p_data.shape} and {p_g.shape}")
    return p_data / (p_data + p_g)
