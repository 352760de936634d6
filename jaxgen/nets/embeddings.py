"""Time embeddings."""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp


def sinusoidal_embedding(t, dim: int, max_period: float = 10000.0):
    """Transformer-style sinusoidal embedding of (possibly fractional) times.

    Vaswani et al. (2017) Sec. 3.5, as used for diffusion time by Ho et al. (2020):
    [cos(t w_k), sin(t w_k)] with w_k = max_period^(-k / (dim/2)), k = 0 .. dim/2-1.

    Args:
      t: (B,) times or step indices.
      dim: embedding width (even).

    Returns:
      (B, dim) float32.
    """
    if dim % 2:
        raise ValueError(f"embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class TimeEmbedding(nn.Module):
    """Sinusoidal features followed by Linear-SiLU-Linear, (B,) -> (B, features)."""

    sinusoid_dim: int
    features: int

    @nn.compact
    def __call__(self, t):
        h = sinusoidal_embedding(t, self.sinusoid_dim)
        h = nn.Dense(self.features, name="linear_1")(h)
        return nn.Dense(self.features, name="linear_2")(nn.silu(h))
