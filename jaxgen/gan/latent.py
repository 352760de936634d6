"""Latent-space interpolation (Radford et al. 2016, sec. 6.1; the lectures'
``z_t = t z_0 + (1 - t) z_1``)."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["interpolate_latents"]


def interpolate_latents(z0, z1, num: int):
    """Rows of linear interpolations between latent pairs.

    Args:
      z0, z1: (R, L) latent pairs, one row each.
      num: points per row, t = 1, ..., 0 evenly spaced (the row runs from G(z_0) to G(z_1)).

    Returns:
      (R * num, L): row r holds ``z_t = t z0[r] + (1 - t) z1[r]``, row-major, so a grid
      ``num`` wide shows one interpolation per row.
    """
    z0, z1 = jnp.asarray(z0), jnp.asarray(z1)
    if z0.shape != z1.shape or z0.ndim != 2:
        raise ValueError(f"z0 and z1 must share a shape (R, L), got {z0.shape} and {z1.shape}")
    if num < 2:
        raise ValueError(f"num must be >= 2, got {num}")
    t = jnp.linspace(1.0, 0.0, num, dtype=z0.dtype)[None, :, None]
    z = t * z0[:, None, :] + (1.0 - t) * z1[:, None, :]
    return z.reshape(-1, z0.shape[-1])
