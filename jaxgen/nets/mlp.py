"""A time-conditioned MLP for low-dimensional (toy 2-D) data.

The denoiser of the lectures' 2-D examples: the point goes through a stack of residual
SiLU blocks, each shifted by a projection of the time (and class) embedding, the way
the UNet's ResBlocks take theirs ('add' conditioning of Ho et al. 2020).
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from jaxgen.nets.embeddings import TimeEmbedding


class MLP(nn.Module):
    """Maps (x_t (B, D), t (B,)) to a prediction of shape (B, out_dim).

    Attributes:
      out_dim: size of the output (the data's D for eps/x0/v/velocity).
      hidden_dim: width of every hidden layer and of the time embedding.
      num_layers: number of residual blocks.
      num_classes: if set, a learned class embedding (index num_classes = no class)
        is added to the time embedding.
      dropout: dropout rate inside the residual blocks.
    """

    out_dim: int
    hidden_dim: int = 256
    num_layers: int = 3
    num_classes: Optional[int] = None
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, t, label=None, *, train: bool = False):
        if x.ndim != 2:
            raise ValueError(f"MLP expects (B, D) input, got shape {x.shape}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {t.shape}")
        # Sinusoids of t are computed in float32; the embedding then joins the input's
        # dtype, which is the network's compute dtype (bf16 under mixed precision).
        emb = TimeEmbedding(self.hidden_dim, self.hidden_dim, name="time_embedding")(t)
        emb = emb.astype(x.dtype)
        if self.num_classes is not None:
            if label is None:
                label = jnp.full((x.shape[0],), self.num_classes, jnp.int32)
            emb = emb + nn.Embed(self.num_classes + 1, self.hidden_dim,
                                 name="class_embedding")(label)
        emb = nn.silu(emb)

        h = nn.Dense(self.hidden_dim, name="dense_in")(x)
        for i in range(self.num_layers):
            r = nn.LayerNorm(name=f"block_{i}_norm")(h)
            r = nn.Dense(self.hidden_dim, name=f"block_{i}_dense_1")(r)
            r = nn.silu(r + nn.Dense(self.hidden_dim, name=f"block_{i}_time_proj")(emb))
            r = nn.Dropout(self.dropout, deterministic=not train)(r)
            h = h + nn.Dense(self.hidden_dim, name=f"block_{i}_dense_2")(r)
        h = nn.silu(nn.LayerNorm(name="norm_out")(h))
        # Zero-initialised like the UNet's last conv: training starts from the zero
        # prediction (the mean target of eps/velocity under unit-variance data).
        return nn.Dense(self.out_dim, kernel_init=nn.initializers.zeros, name="dense_out")(h)
