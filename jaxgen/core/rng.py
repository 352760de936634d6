"""Per-example randomness: each example's draws depend on its position only, never on the
batch size, the device count or how a batch is split."""

from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp


def per_example_keys(rng: chex.PRNGKey, batch_size: int, offset=0,
                     positions: Optional[chex.Array] = None) -> chex.Array:
    """One key per example, folded from its position, so that an example's randomness
    does not depend on the batch size or on how the batch is split across devices.

    Positions are ``offset + arange(batch_size)``, or ``positions`` (B,) when given (the
    examples' places in a larger batch, e.g. a strided micro-batch)."""
    if positions is None:
        positions = offset + jnp.arange(batch_size)
    elif jnp.shape(positions) != (batch_size,):
        raise ValueError(f"positions must have shape ({batch_size},), got {jnp.shape(positions)}")
    return jax.vmap(lambda i: jax.random.fold_in(rng, i))(positions)


def initial_noise(rng: chex.PRNGKey, shape, dtype=jnp.float32) -> chex.Array:
    """z ~ N(0, I) of ``shape`` (B, ...), drawn per example: sample i is the same
    whatever the batch size it is drawn in."""
    keys = per_example_keys(rng, shape[0])
    return jax.vmap(lambda k: jax.random.normal(k, shape[1:], dtype))(keys)
