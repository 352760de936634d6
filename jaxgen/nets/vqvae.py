"""The VQ-VAE's encoder and decoder (van den Oord, Vinyals & Kavukcuoglu 2017, Sec. 4.1:
strided convolutions down to a grid of D-dimensional encodings, residual 3x3 blocks,
and the mirror image back up), with the codebook e (K, D) as the parameter 'codebook'.

Quantization itself is pure math (``jaxgen.autoregressive.quantize``); the family
(``jaxgen.train.vqvae``) joins the pieces. Methods: ``encode`` images (B, H, W, C) ->
z_e (B, H/f, W/f, D), ``decode`` z_q -> images (B, H, W, C); f = 2^len(channels).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from jaxgen.nets.conv import Conv


class _ResBlock(nn.Module):
    """x + Conv1x1(ReLU(Conv3x3(ReLU(x)))) (van den Oord et al. 2017, Sec. 4.1)."""

    channels: int

    @nn.compact
    def __call__(self, x):
        h = Conv(self.channels, 3)(nn.relu(x))
        return x + Conv(self.channels, 1)(nn.relu(h))


class VQVAE(nn.Module):
    """Encoder, decoder and codebook.

    Attributes:
      out_channels: image channels C.
      num_codes: K. code_dim: D.
      channels: stride-2 levels of the encoder (the decoder mirrors them).
      num_res_blocks: residual blocks at the code resolution, in both networks.
    """

    out_channels: int
    num_codes: int = 64
    code_dim: int = 16
    channels: Sequence[int] = (32, 64)
    num_res_blocks: int = 1

    def setup(self):
        self.codebook = self.param("codebook", nn.initializers.normal(1.0),
                                   (self.num_codes, self.code_dim))
        self.down = [Conv(c, 3, stride=2) for c in self.channels]
        self.enc_res = [_ResBlock(self.channels[-1]) for _ in range(self.num_res_blocks)]
        self.to_code = Conv(self.code_dim, 1)
        self.from_code = Conv(self.channels[-1], 3)
        self.dec_res = [_ResBlock(self.channels[-1]) for _ in range(self.num_res_blocks)]
        ups = list(self.channels[-2::-1]) + [self.channels[0]]
        self.up = [Conv(c, 3) for c in ups]
        self.to_image = Conv(self.out_channels, 3)

    def encode(self, x):
        h = x
        for i, conv in enumerate(self.down):
            h = conv(h if i == 0 else nn.relu(h))
        for block in self.enc_res:
            h = block(h)
        return self.to_code(nn.relu(h))

    def decode(self, z):
        h = self.from_code(z)
        for block in self.dec_res:
            h = block(h)
        for conv in self.up:
            h = conv(nn.relu(h).repeat(2, axis=1).repeat(2, axis=2))
        return self.to_image(nn.relu(h))

    def __call__(self, x):
        """Encoder and decoder without quantization (used to create the parameters)."""
        return self.decode(self.encode(x)), self.codebook


__all__ = ["VQVAE"]
