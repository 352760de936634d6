"""The KL-regularised convolutional autoencoder of latent diffusion, and a patch
discriminator for its optional adversarial term (architectures only; the losses are in
``jaxgen.vae`` and ``jaxgen.gan``, the training in ``jaxgen.train.autoencoder``).

Rombach et al. 2022 ("High-Resolution Image Synthesis with Latent Diffusion Models",
Sec. 3 and App. G) compress an image H x W x 3 into a spatial latent H/f x W/f x C with a
convolutional encoder whose output is a diagonal Gaussian q(z|x) per latent position,
and decode it back with a mirrored convolutional decoder; f = 4 or 8 and small C (the
lectures: 256 x 256 x 3 -> 32 x 32 x 16, "D = 8, C = 16"). The discriminator is a
PatchGAN (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
Networks", Sec. 3.2.2): a fully convolutional net with one real/fake logit per patch.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxgen.nets.conv import Conv
from jaxgen.nets.layers import Downsample, Upsample
from jaxgen.nets.norm import GroupNorm

# The posterior's log variance is clipped here, as in Rombach et al.'s
# DiagonalGaussianDistribution, so that exp(logvar) never over- or underflows.
LOGVAR_RANGE = (-30.0, 20.0)


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice with a residual connection (a 1x1 conv when the channel
    count changes); the blocks of the LDM autoencoder, without time conditioning."""

    features: int
    num_groups: int = 8

    @nn.compact
    def __call__(self, x):
        h = Conv(self.features, 3, name="conv1")(
            nn.silu(GroupNorm(self.num_groups, epsilon=1e-6, name="norm1")(x)))
        h = Conv(self.features, 3, name="conv2")(
            nn.silu(GroupNorm(self.num_groups, epsilon=1e-6, name="norm2")(h)))
        if x.shape[-1] != self.features:
            x = Conv(self.features, 1, name="shortcut")(x)
        return x + h


def _check_levels(channels: Sequence[int], num_groups: int) -> None:
    if not channels:
        raise ValueError("channels must name at least one level")
    if any(c % num_groups for c in channels):
        raise ValueError(f"num_groups {num_groups} must divide every entry of channels "
                         f"{tuple(channels)}")


class Encoder(nn.Module):
    """x (B, H, W, C_x) -> (mean, logvar) of q(z|x), each (B, H/f, W/f, latent_channels)
    with f = 2^(len(channels) - 1): ``num_res_blocks`` residual blocks per level, a
    stride-2 convolution between levels, a middle block, and a 3x3 convolution to
    2 * latent_channels (mean and log variance)."""

    channels: Sequence[int]
    latent_channels: int
    num_res_blocks: int = 1
    num_groups: int = 8

    @nn.compact
    def __call__(self, x):
        _check_levels(self.channels, self.num_groups)
        if x.ndim != 4:
            raise ValueError(f"Encoder expects NHWC images, got shape {x.shape}")
        f = 2 ** (len(self.channels) - 1)
        if x.shape[1] % f or x.shape[2] % f:
            raise ValueError(f"image size {x.shape[1]}x{x.shape[2]} must be divisible by the "
                             f"downsampling factor {f} of {len(self.channels)} levels")
        h = Conv(self.channels[0], 3, name="conv_in")(x)
        for i, ch in enumerate(self.channels):
            for j in range(self.num_res_blocks):
                h = ResnetBlock(ch, self.num_groups, name=f"down_{i}_res_{j}")(h)
            if i != len(self.channels) - 1:
                h = Downsample(ch, name=f"down_{i}_downsample")(h)
        h = ResnetBlock(self.channels[-1], self.num_groups, name="mid_res")(h)
        h = nn.silu(GroupNorm(self.num_groups, epsilon=1e-6, name="norm_out")(h))
        moments = Conv(2 * self.latent_channels, 3, name="conv_out")(h)
        mean, logvar = jnp.split(moments, 2, axis=-1)
        return mean, jnp.clip(logvar, *LOGVAR_RANGE)


class Decoder(nn.Module):
    """z (B, h, w, latent_channels) -> images (B, h f, w f, out_channels): the encoder
    mirrored, nearest-neighbour x2 + 3x3 convolution between levels. The output is
    unbounded (the reconstruction loss pulls it into [-1, 1])."""

    channels: Sequence[int]
    out_channels: int
    num_res_blocks: int = 1
    num_groups: int = 8

    @nn.compact
    def __call__(self, z):
        _check_levels(self.channels, self.num_groups)
        if z.ndim != 4:
            raise ValueError(f"Decoder expects NHWC latents, got shape {z.shape}")
        h = Conv(self.channels[-1], 3, name="conv_in")(z)
        h = ResnetBlock(self.channels[-1], self.num_groups, name="mid_res")(h)
        for i, ch in enumerate(reversed(self.channels)):
            for j in range(self.num_res_blocks + 1):
                h = ResnetBlock(ch, self.num_groups, name=f"up_{i}_res_{j}")(h)
            if i != len(self.channels) - 1:
                h = Upsample(ch, name=f"up_{i}_upsample")(h)
        h = nn.silu(GroupNorm(self.num_groups, epsilon=1e-6, name="norm_out")(h))
        return Conv(self.out_channels, 3, name="conv_out")(h)


class KLAutoencoder(nn.Module):
    """The encoder and decoder of a KL-regularised autoencoder (Rombach et al. 2022).

    ``__call__(x)`` returns ``(mean, logvar)``, as ``encode``; ``decode(z)`` maps latents
    back. Sampling z from the posterior is the caller's (``jaxgen.vae.sample_gaussian``).

    Attributes:
      out_channels: channels of the images.
      channels: channels per resolution level; the downsampling factor is
        2^(len(channels) - 1).
      latent_channels: C, channels of the latent.
      num_res_blocks: residual blocks per level (the decoder has one more per level).
      num_groups: GroupNorm groups.
    """

    out_channels: int
    channels: Sequence[int] = (32, 64, 64)
    latent_channels: int = 4
    num_res_blocks: int = 1
    num_groups: int = 8

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channels) - 1)

    def setup(self):
        self.encoder = Encoder(tuple(self.channels), self.latent_channels, self.num_res_blocks,
                               self.num_groups)
        self.decoder = Decoder(tuple(self.channels), self.out_channels, self.num_res_blocks,
                               self.num_groups)

    def __call__(self, x):
        mean, logvar = self.encoder(x)
        self.decoder(mean)  # so that init creates the decoder's parameters as well
        return mean, logvar

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)


class PatchDiscriminator(nn.Module):
    """A PatchGAN discriminator (Isola et al. 2017): stride-2 3x3 convolutions with
    LeakyReLU(0.2) (GroupNorm after the first, per example: no batch statistics), then a
    3x3 convolution to one logit per patch.

    Returns (B, H / 2^len(channels), W / 2^len(channels)) logits (rounded up).
    """

    channels: Sequence[int] = (32, 64)
    num_groups: int = 8

    @nn.compact
    def __call__(self, x):
        if x.ndim != 4:
            raise ValueError(f"PatchDiscriminator expects NHWC images, got shape {x.shape}")
        h = x
        for i, ch in enumerate(self.channels):
            h = Conv(ch, 3, stride=2, name=f"conv_{i}")(h)
            if i > 0:
                h = GroupNorm(math.gcd(self.num_groups, ch), epsilon=1e-5,
                                 name=f"norm_{i}")(h)
            h = nn.leaky_relu(h, 0.2)
        return Conv(1, 3, name="conv_out")(h)[..., 0]


__all__ = ["Decoder", "Encoder", "KLAutoencoder", "LOGVAR_RANGE", "PatchDiscriminator",
           "ResnetBlock"]
