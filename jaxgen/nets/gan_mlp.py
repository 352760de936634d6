"""MLP generator and discriminator for 2-D toy data.

The mode-collapse benchmarks of Metz et al. 2017 (unrolled GANs) and VEEGAN (Srivastava
et al. 2017, appendix) use small fully connected players: a generator with two hidden
layers of 128 ReLU units and a discriminator of the same kind. The generator's output is
linear because the toy data are not confined to [-1, 1].
"""

from __future__ import annotations

import flax.linen as nn


class MLPGenerator(nn.Module):
    """z (B, L) -> x (B, out_dim) through ``num_layers`` hidden ReLU layers."""

    out_dim: int
    hidden_dim: int = 128
    num_layers: int = 2

    @nn.compact
    def __call__(self, z, labels=None, *, train: bool = False):
        if z.ndim != 2:
            raise ValueError(f"MLPGenerator expects z of shape (B, L), got {z.shape}")
        h = z
        for i in range(self.num_layers):
            h = nn.relu(nn.Dense(self.hidden_dim, name=f"hidden_{i}")(h))
        return nn.Dense(self.out_dim, name="out")(h)


class MLPDiscriminator(nn.Module):
    """x (B, D) -> (B,) logits / critic values through ``num_layers`` hidden ReLU layers."""

    hidden_dim: int = 128
    num_layers: int = 2

    @nn.compact
    def __call__(self, x, labels=None, *, train: bool = False):
        if x.ndim != 2:
            raise ValueError(f"MLPDiscriminator expects x of shape (B, D), got {x.shape}")
        h = x
        for i in range(self.num_layers):
            h = nn.relu(nn.Dense(self.hidden_dim, name=f"hidden_{i}")(h))
        return nn.Dense(1, name="out")(h)[:, 0]
