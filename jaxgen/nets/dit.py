"""Diffusion Transformer (DiT; Peebles & Xie 2023, "Scalable Diffusion Models with
Transformers", arXiv:2212.09748).

The image (or latent) is cut into p x p patches, each patch is linearly embedded as one
token, fixed 2-D sin-cos position embeddings are added, and a stack of transformer blocks
processes the tokens. The timestep and class embeddings are summed into one conditioning
vector c, which sets the blocks' layer-norm scale/shift and residual gates (adaLN-Zero,
Sec. 3.2): every block starts as the identity because its gates are regressed by a
zero-initialised linear layer. A final adaLN layer and a zero-initialised linear map
decode each token into its patch, and the patches are put back into an image.

Sizes (Table 1): S (12 layers, width 384, 6 heads), B (12, 768, 12), L (24, 1024, 16),
XL (28, 1152, 16); the patch size p is the suffix (DiT-XL/2: p = 2).

For conditioning on a sequence (text-like tokens), ``cross_attention=True`` adds a
multi-head cross-attention layer after the self-attention of every block (the paper's
"cross-attention block", Sec. 3.2, after Vaswani et al. 2017); its output projection is
zero-initialised, so the block is still the identity at initialisation.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.nets.attention import dot_product_attention
from jaxgen.nets.embeddings import TimeEmbedding

# Peebles & Xie (2023), Table 1: (layers N, hidden size d, heads).
DIT_SIZES = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}
# Width of the sinusoidal timestep features before the embedding MLP (the paper's code).
FREQUENCY_DIM = 256


def patchify(x, patch_size: int):
    """(B, H, W, C) -> (B, (H/p) (W/p), p p C): one token per p x p patch, row-major
    over the patch grid, each token holding its patch's pixels (row, column, channel)."""
    if x.ndim != 4:
        raise ValueError(f"patchify expects images (B, H, W, C), got shape {x.shape}")
    b, h, w, c = x.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}")
    x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(tokens, patch_size: int, height: int, width: int):
    """Inverse of ``patchify``: (B, (H/p) (W/p), p p C) -> (B, H, W, C)."""
    b, n, d = tokens.shape
    p = patch_size
    gh, gw = height // p, width // p
    if gh * p != height or gw * p != width or gh * gw != n or d % (p * p):
        raise ValueError(f"cannot unpatchify tokens {tokens.shape} into {height}x{width} "
                         f"images with patch size {p}")
    c = d // (p * p)
    x = tokens.reshape(b, gh, gw, p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, height, width, c)


def sincos_pos_embed_2d(grid_h: int, grid_w: int, dim: int) -> np.ndarray:
    """Fixed 2-D sin-cos position embeddings, (grid_h * grid_w, dim), row-major.

    As in DiT (Sec. 3.1, "standard ViT frequency-based positional embeddings (the sine-
    cosine version)"): half of the channels encode the row, half the column, each as
    [sin(pos w_k), cos(pos w_k)] with w_k = 10000^(-k / (dim/4)), k = 0 .. dim/4 - 1.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embeddings need a width divisible by 4, got {dim}")
    omega = 1.0 / 10000.0 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))

    def one_axis(pos):
        args = pos[:, None] * omega[None, :]
        return np.concatenate([np.sin(args), np.cos(args)], axis=1)

    rows, cols = np.meshgrid(np.arange(grid_h, dtype=np.float64),
                             np.arange(grid_w, dtype=np.float64), indexing="ij")
    emb = np.concatenate([one_axis(rows.reshape(-1)), one_axis(cols.reshape(-1))], axis=1)
    return emb.astype(np.float32)


def modulate(x, shift, scale):
    """adaLN: x (B, T, D) scaled by (1 + scale) and shifted, per example (B, D)."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


def _layer_norm(name):
    # adaLN supplies scale and shift, so the norms have no affine parameters of their own.
    return nn.LayerNorm(epsilon=1e-6, use_scale=False, use_bias=False, name=name)


class MultiHeadAttention(nn.Module):
    """Softmax attention of the tokens x (B, T, D) over ``context`` (B, L, D_ctx), or over
    themselves when ``context`` is None; ``num_heads`` heads of width D / num_heads."""

    num_heads: int
    zero_out: bool = False

    @nn.compact
    def __call__(self, x, context=None):
        b, t, d = x.shape
        if d % self.num_heads:
            raise ValueError(f"width {d} is not divisible by num_heads={self.num_heads}")
        hd = d // self.num_heads
        if context is None:
            q, k, v = jnp.split(nn.Dense(3 * d, name="qkv")(x), 3, axis=-1)
        else:
            q = nn.Dense(d, name="q")(x)
            k, v = jnp.split(nn.Dense(2 * d, name="kv")(context.astype(x.dtype)), 2, axis=-1)
        split = lambda a: a.reshape(b, a.shape[1], self.num_heads, hd)
        y = dot_product_attention(split(q), split(k), split(v)).reshape(b, t, d)
        init = nn.initializers.zeros if self.zero_out else nn.initializers.lecun_normal()
        return nn.Dense(d, kernel_init=init, name="proj")(y)


class DiTBlock(nn.Module):
    """adaLN-Zero transformer block (Peebles & Xie 2023, Sec. 3.2 and Fig. 3):

      shift1, scale1, gate1, shift2, scale2, gate2 = Linear(SiLU(c))   (zero-initialised)
      x = x + gate1 * SelfAttention(LN(x) (1 + scale1) + shift1)
      [x = x + CrossAttention(LN(x), context)]                          (cross_attention)
      x = x + gate2 * MLP(LN(x) (1 + scale2) + shift2)

    With the modulation layer zero, gate1 = gate2 = 0 and the block is the identity.
    """

    hidden_size: int
    num_heads: int
    mlp_ratio: float = 4.0
    cross_attention: bool = False
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, c, context=None, *, train: bool = False):
        d = self.hidden_size
        mod = nn.Dense(6 * d, kernel_init=nn.initializers.zeros, name="adaLN_modulation")(
            nn.silu(c))
        shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(mod, 6, axis=-1)
        h = modulate(_layer_norm("norm1")(x), shift1, scale1)
        x = x + gate1[:, None, :] * MultiHeadAttention(self.num_heads, name="attn")(h)
        if self.cross_attention:
            if context is None:
                raise ValueError("a cross-attention DiT block needs a context (B, L, D_ctx)")
            x = x + MultiHeadAttention(self.num_heads, zero_out=True, name="cross_attn")(
                _layer_norm("norm_cross")(x), context)
        h = modulate(_layer_norm("norm2")(x), shift2, scale2)
        h = nn.gelu(nn.Dense(int(d * self.mlp_ratio), name="mlp_fc1")(h), approximate=True)
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return x + gate2[:, None, :] * nn.Dense(d, name="mlp_fc2")(h)


class _ScannedBlock(nn.Module):
    """A DiTBlock as the body of ``nn.scan``: (carry, *broadcast) -> (carry, None)."""

    hidden_size: int
    num_heads: int
    mlp_ratio: float
    cross_attention: bool
    dropout: float
    train: bool

    @nn.compact
    def __call__(self, x, c, context):
        return DiTBlock(self.hidden_size, self.num_heads, self.mlp_ratio, self.cross_attention,
                        self.dropout, name="block")(x, c, context, train=self.train), None


def stack_blocks(params, depth: int):
    """Parameters of a ``DiT(remat=False)`` (``block_0`` .. ``block_{depth-1}``) in the
    layout of ``DiT(remat=True)`` (``blocks/block`` with a leading axis of size depth)."""
    params = dict(params)
    blocks = [params.pop(f"block_{i}") for i in range(depth)]
    params["blocks"] = {"block": jax.tree.map(lambda *a: jnp.stack(a), *blocks)}
    return params


class DiT(nn.Module):
    """Maps (x_t (B, H, W, C), t (B,), labels (B,) or None) to (B, H, W, out_channels).

    The call signature of the UNet and the MLP, so the diffusion family drives it
    unchanged. ``t`` is a DDPM step or a float on the same ~[0, 1000] range.

    Attributes:
      out_channels: output channels (the data's C for eps/x0/v/velocity; the paper's
        models output 2C, mean and learned variance of Nichol & Dhariwal 2021).
      patch_size: p; H and W must be divisible by it (T = HW / p^2 tokens).
      hidden_size, depth, num_heads, mlp_ratio: the transformer (``DIT_SIZES``).
      num_classes: if set, a learned class table with num_classes + 1 rows (the last is
        the "no class" of classifier-free guidance; None labels mean it) added to the
        timestep embedding.
      cross_attention: add a cross-attention layer to every block; the call then needs
        ``context`` (B, L, D_ctx).
      dropout: dropout rate on the MLP hidden layer of each block.
      remat: rematerialise every block (``nn.remat``, i.e. ``jax.checkpoint``) and run
        the blocks as one ``nn.scan``: the backward pass recomputes a block's activations
        from its input instead of keeping them, for less memory at about one extra
        forward pass. The same function and parameter count; the block parameters are
        stacked (``stack_blocks`` converts a plain model's).
    """

    out_channels: int
    patch_size: int = 2
    hidden_size: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    num_classes: Optional[int] = None
    cross_attention: bool = False
    dropout: float = 0.0
    remat: bool = False

    @nn.compact
    def __call__(self, x, t, label=None, context=None, *, train: bool = False):
        if x.ndim != 4:
            raise ValueError(f"DiT expects images (B, H, W, C), got shape {x.shape}")
        b, height, width, _ = x.shape
        if t.shape != (b,):
            raise ValueError(f"t must have shape ({b},), got {t.shape}")
        if context is not None and (context.ndim != 3 or context.shape[0] != b):
            raise ValueError(f"context must have shape ({b}, L, D_ctx), got {context.shape}")
        p, d = self.patch_size, self.hidden_size
        tokens = nn.Dense(d, name="patch_embed")(patchify(x, p))
        pos = sincos_pos_embed_2d(height // p, width // p, d)
        tokens = tokens + jnp.asarray(pos, tokens.dtype)[None]

        # Sinusoids of t in float32; the embedding then joins the compute dtype.
        c = TimeEmbedding(FREQUENCY_DIM, d, name="time_embedding")(t).astype(x.dtype)
        if self.num_classes is not None:
            if label is None:
                label = jnp.full((b,), self.num_classes, jnp.int32)
            c = c + nn.Embed(self.num_classes + 1, d, name="class_embedding")(label).astype(
                x.dtype)

        if self.remat:
            # One rematerialised block scanned over the depth: its parameters are stacked
            # along a leading axis of size depth under 'blocks' (``stack_blocks`` converts),
            # and the backward pass recomputes each block inside the loop. (Unrolled
            # ``nn.remat`` blocks saved no memory on XLA:CPU, which hoists the recomputation;
            # inside a loop it cannot.)
            scanned = nn.scan(nn.remat(_ScannedBlock), variable_axes={"params": 0},
                              split_rngs={"params": True, "dropout": True},
                              in_axes=(nn.broadcast, nn.broadcast), length=self.depth)
            tokens, _ = scanned(d, self.num_heads, self.mlp_ratio, self.cross_attention,
                                self.dropout, train, name="blocks")(tokens, c, context)
        else:
            for i in range(self.depth):
                tokens = DiTBlock(d, self.num_heads, self.mlp_ratio, self.cross_attention,
                                  self.dropout, name=f"block_{i}")(tokens, c, context,
                                                                   train=train)

        # Final layer (Sec. 3.2): adaLN (shift, scale; zero-initialised), then a
        # zero-initialised linear decoder to p x p x out_channels per token.
        shift, scale = jnp.split(nn.Dense(2 * d, kernel_init=nn.initializers.zeros,
                                          name="final_adaLN")(nn.silu(c)), 2, axis=-1)
        h = modulate(_layer_norm("final_norm")(tokens), shift, scale)
        h = nn.Dense(p * p * self.out_channels, kernel_init=nn.initializers.zeros,
                     name="final_linear")(h)
        return unpatchify(h, p, height, width)


def dit_kwargs(size: str) -> dict:
    """The transformer of DiT-``size`` (Table 1) as DiT keyword arguments."""
    if size not in DIT_SIZES:
        raise ValueError(f"DiT size must be one of {tuple(DIT_SIZES)}, got {size!r}")
    depth, hidden, heads = DIT_SIZES[size]
    return {"depth": depth, "hidden_size": hidden, "num_heads": heads}
