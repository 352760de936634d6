"""A UNet denoiser with sinusoidal time embeddings, AdaGN residual blocks and
self-attention at chosen resolutions (Ho et al. 2020; Dhariwal & Nichol 2021).

The block layout follows the common DDPM UNet (the one of diffusers'
``UNet2DModel``): per level ``layers_per_block`` residual blocks on the way down
and ``layers_per_block + 1`` on the way up, each up block consuming one skip
connection; a stride-2 conv between levels going down and nearest + conv going up.
With ``block_channels=(32, 64, 64)``, ``attention=(False, True, False)``,
``num_groups=8``, ``time_conditioning='add'`` and one input channel it has
1,623,169 parameters, the same as that reference model.
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxgen.nets.conv import Conv
from jaxgen.nets.embeddings import TimeEmbedding
from jaxgen.nets.layers import Attention, Downsample, ResBlock, Upsample
from jaxgen.nets.norm import GroupNorm


class UNet(nn.Module):
    """Maps (x_t (B, H, W, C), t (B,)) to a prediction of shape (B, H, W, out_channels).

    H and W must be divisible by 2^(len(block_channels) - 1).

    Attributes:
      out_channels: channels of the output (the data's channels for eps/x0/v).
      block_channels: channels per resolution level.
      attention: per level, whether its blocks are followed by self-attention.
      layers_per_block: residual blocks per level on the way down.
      mid_attention: self-attention between the two middle residual blocks.
      num_groups: GroupNorm groups.
      head_dim: channels per attention head.
      time_conditioning: 'adagn' (scale and shift) or 'add'.
      num_classes: if set, a learned class embedding (index num_classes = no class)
        is added to the time embedding.
      dropout: dropout rate inside residual blocks.
      remat: rematerialise every residual and attention block (``nn.remat``, i.e.
        ``jax.checkpoint``): the backward pass recomputes each block's activations from
        its input instead of keeping them, for less memory at about one extra forward
        pass. Same parameters and, up to float rounding, same gradients.
    """

    out_channels: int
    block_channels: Sequence[int] = (32, 64, 64)
    attention: Sequence[bool] = (False, True, False)
    layers_per_block: int = 2
    mid_attention: bool = True
    num_groups: int = 8
    head_dim: int = 8
    time_conditioning: str = "adagn"
    num_classes: Optional[int] = None
    dropout: float = 0.0
    remat: bool = False

    @nn.compact
    def __call__(self, x, t, label=None, *, train: bool = False):
        if x.ndim != 4:
            raise ValueError(f"UNet expects NHWC input, got shape {x.shape}")
        if len(self.attention) != len(self.block_channels):
            raise ValueError(f"attention has {len(self.attention)} entries, block_channels "
                             f"{len(self.block_channels)}: give one per level")
        factor = 2 ** (len(self.block_channels) - 1)
        if x.shape[1] % factor or x.shape[2] % factor:
            raise ValueError(f"image size {x.shape[1]}x{x.shape[2]} must be divisible by "
                             f"{factor} for {len(self.block_channels)} UNet levels")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {t.shape}")
        ch0 = self.block_channels[0]
        # Sinusoids of t are computed in float32; the embedding then joins the input's
        # dtype, which is the network's compute dtype (bf16 under mixed precision).
        emb = TimeEmbedding(ch0, 4 * ch0, name="time_embedding")(t).astype(x.dtype)
        if self.num_classes is not None:
            if label is None:
                label = jnp.full((x.shape[0],), self.num_classes, jnp.int32)
            emb = emb + nn.Embed(self.num_classes + 1, 4 * ch0, name="class_embedding")(label)

        # static_argnums counts the module as argument 0: (x, emb, train) are 1, 2, 3.
        res_cls = nn.remat(ResBlock, static_argnums=(3,)) if self.remat else ResBlock
        attn_cls = nn.remat(Attention) if self.remat else Attention
        res = lambda f, name: res_cls(f, self.num_groups, self.time_conditioning,
                                      self.dropout, name=name)
        attn = lambda name: attn_cls(self.head_dim, self.num_groups, name=name)

        h = Conv(ch0, 3, name="conv_in")(x)
        skips = [h]
        last = len(self.block_channels) - 1
        for i, (ch, use_attn) in enumerate(zip(self.block_channels, self.attention)):
            for j in range(self.layers_per_block):
                h = res(ch, f"down_{i}_res_{j}")(h, emb, train)
                if use_attn:
                    h = attn(f"down_{i}_attn_{j}")(h)
                skips.append(h)
            if i != last:
                h = Downsample(ch, name=f"down_{i}_downsample")(h)
                skips.append(h)

        h = res(self.block_channels[-1], "mid_res_0")(h, emb, train)
        if self.mid_attention:
            h = attn("mid_attn")(h)
        h = res(self.block_channels[-1], "mid_res_1")(h, emb, train)

        for i, (ch, use_attn) in enumerate(zip(reversed(self.block_channels),
                                               reversed(self.attention))):
            for j in range(self.layers_per_block + 1):
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = res(ch, f"up_{i}_res_{j}")(h, emb, train)
                if use_attn:
                    h = attn(f"up_{i}_attn_{j}")(h)
            if i != last:
                h = Upsample(ch, name=f"up_{i}_upsample")(h)

        h = nn.silu(GroupNorm(self.num_groups, epsilon=1e-5, name="norm_out")(h))
        return Conv(self.out_channels, 3, kernel_init=nn.initializers.zeros, name="conv_out")(h)
