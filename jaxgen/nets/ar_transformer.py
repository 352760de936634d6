"""A decoder-only (causal) transformer over token sequences: the autoregressive prior over
the discrete codes of a VQ-VAE (van den Oord et al. 2017, Sec. 3.3, used a PixelCNN; Esser,
Rombach & Ommer 2021, "Taming Transformers", Sec. 3.2, a GPT-style transformer).

``ARTransformer`` maps x (B, L) integer tokens to logits (B, L, K) whose row i is
p(x_i | x_<i): the input is shifted right behind a start token, and self-attention is
causal (``jax.nn.dot_product_attention(..., is_causal=True)``), so row i sees x_0..x_(i-1).
Pre-LayerNorm blocks (Radford et al. 2019) with learned position embeddings.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position i attends to positions <= i."""

    num_heads: int

    @nn.compact
    def __call__(self, h):
        b, length, d = h.shape
        qkv = nn.Dense(3 * d, name="qkv")(h).reshape(b, length, 3, self.num_heads,
                                                     d // self.num_heads)
        out = jax.nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2],
                                           is_causal=True)
        return nn.Dense(d, name="out")(out.reshape(b, length, d))


class ARTransformer(nn.Module):
    """Causal transformer: tokens (B, L) in [0, num_tokens) -> logits (B, L, num_tokens),
    row i computed from tokens < i only.

    Attributes:
      num_tokens: K, the vocabulary (the VQ-VAE's codebook size).
      seq_len: L.
      embed_dim: token width (divisible by num_heads).
      num_layers, num_heads, mlp_ratio: the blocks.
    """

    num_tokens: int
    seq_len: int
    embed_dim: int = 128
    num_layers: int = 4
    num_heads: int = 4
    mlp_ratio: int = 4

    @nn.compact
    def __call__(self, x):
        if x.ndim != 2 or x.shape[1] != self.seq_len:
            raise ValueError(f"ARTransformer input must be tokens (B, {self.seq_len}), got "
                             f"shape {x.shape}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} must be divisible by num_heads "
                             f"{self.num_heads}")
        start = jnp.full((x.shape[0], 1), self.num_tokens, jnp.int32)
        tokens = jnp.concatenate([start, x[:, :-1].astype(jnp.int32)], axis=1)
        h = nn.Embed(self.num_tokens + 1, self.embed_dim, name="token_embedding")(tokens)
        pos = self.param("position_embedding", nn.initializers.normal(0.02),
                         (self.seq_len, self.embed_dim))
        h = h + pos[None]
        for i in range(self.num_layers):
            h = h + CausalSelfAttention(self.num_heads, name=f"attn_{i}")(
                nn.LayerNorm(name=f"ln_attn_{i}")(h))
            m = nn.Dense(self.mlp_ratio * self.embed_dim, name=f"mlp_in_{i}")(
                nn.LayerNorm(name=f"ln_mlp_{i}")(h))
            h = h + nn.Dense(self.embed_dim, name=f"mlp_out_{i}")(nn.gelu(m))
        return nn.Dense(self.num_tokens, name="logits")(nn.LayerNorm(name="ln_out")(h))


__all__ = ["ARTransformer", "CausalSelfAttention"]
