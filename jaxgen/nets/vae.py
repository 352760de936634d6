"""VAE encoders and decoders (architectures only; the bounds are in ``jaxgen.vae``).

* ``vae_mlp``: the lectures' VAE (the PyTorch example): 784-400-20, ReLU, with two
  Linear(400 -> 20) heads for mu and log sigma^2, and a mirrored 20-400-784 decoder.
  ``hidden_dims=(200, 200)``, ``latent_dim=50``, tanh is Burda et al.'s (2016)
  one-stochastic-layer model.
* ``vae_conv``: stride-2 3x3 convolutions down (28 -> 14 -> 7 for two levels), a flat
  Gaussian latent from Linear heads, and nearest-neighbour upsampling + 3x3 convolutions
  back up.
* ``vae_hierarchical``: two stochastic layers, x -> z_1 -> z_2 with q(z_1|x) q(z_2|z_1),
  p(z_2) = N(0, I), p(z_1|z_2) and p(x|z_1) (Burda et al.'s two-layer model with
  ``hidden_dims=(100, 100)``, ``latent_dim=100``, ``top_hidden_dims=(50, 50)``,
  ``top_latent_dim=50``): the Markovian hierarchical VAE that the lectures extend to
  diffusion.

Every decoder returns ``num_params`` values per data value, concatenated on the last
axis: (B, *data_shape[:-1], C * num_params) (logits, or mean and log scale).
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxgen.nets.conv import Conv
from jaxgen.nets.layers import Upsample

ARCHITECTURES = ("vae_mlp", "vae_conv", "vae_hierarchical")
ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh, "silu": nn.silu, "softplus": nn.softplus}


def _flatten(x):
    return x.reshape((x.shape[0], -1))


class GaussianMLP(nn.Module):
    """(B, ...) -> (mean, logvar), each (B, latent_dim): hidden Dense layers, then one
    Linear head for the mean and one for the log variance."""

    hidden_dims: Sequence[int]
    latent_dim: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        h = _flatten(x)
        for i, width in enumerate(self.hidden_dims):
            h = ACTIVATIONS[self.activation](nn.Dense(width, name=f"dense_{i}")(h))
        return nn.Dense(self.latent_dim, name="mean")(h), nn.Dense(self.latent_dim,
                                                                  name="logvar")(h)


class MLPDecoder(nn.Module):
    """(B, latent_dim) -> (B, *out_shape): hidden Dense layers and a Linear output."""

    hidden_dims: Sequence[int]
    out_shape: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, z):
        h = z
        for i, width in enumerate(self.hidden_dims):
            h = ACTIVATIONS[self.activation](nn.Dense(width, name=f"dense_{i}")(h))
        out = nn.Dense(math.prod(self.out_shape), name="out")(h)
        return out.reshape((z.shape[0],) + tuple(self.out_shape))


class ConvEncoder(nn.Module):
    """(B, H, W, C) -> (mean, logvar) of (B, latent_dim): one stride-2 3x3 convolution
    per entry of ``channels``, then Linear heads."""

    channels: Sequence[int]
    latent_dim: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        if x.ndim != 4:
            raise ValueError(f"ConvEncoder expects images (B, H, W, C), got shape {x.shape}")
        h = x
        for i, c in enumerate(self.channels):
            h = ACTIVATIONS[self.activation](Conv(c, 3, stride=2, name=f"down_{i}")(h))
        h = _flatten(h)
        return nn.Dense(self.latent_dim, name="mean")(h), nn.Dense(self.latent_dim,
                                                                  name="logvar")(h)


class ConvDecoder(nn.Module):
    """(B, latent_dim) -> (B, H, W, out_channels): a Linear map to the coarsest feature
    map (H / 2^n, W / 2^n, channels[-1]), n upsampling steps, and a 3x3 output conv."""

    channels: Sequence[int]
    out_shape: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, z):
        act = ACTIVATIONS[self.activation]
        f = 2 ** len(self.channels)
        h_out, w_out, c_out = self.out_shape
        shape = (h_out // f, w_out // f, self.channels[-1])
        h = act(nn.Dense(math.prod(shape), name="dense")(z)).reshape((z.shape[0],) + shape)
        for i, c in enumerate(reversed(self.channels)):
            h = act(Upsample(c, name=f"up_{i}")(h))
        return Conv(c_out, 3, name="out")(h)


class VAE(nn.Module):
    """An encoder q(z|x) and a decoder p(x|z); use ``encode`` and ``decode`` through
    ``apply(..., method=...)``; ``__call__`` (decode the posterior mean) is for init."""

    encoder: nn.Module
    decoder: nn.Module

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, x):
        mean, _ = self.encode(x)
        return self.decode(mean)


class HierarchicalVAE(nn.Module):
    """Two stochastic layers: q(z_1|x), q(z_2|z_1), p(z_1|z_2), p(x|z_1)."""

    encoder: nn.Module        # q(z_1 | x)
    encoder_top: nn.Module    # q(z_2 | z_1)
    prior: nn.Module          # p(z_1 | z_2)
    decoder: nn.Module        # p(x | z_1)

    def encode(self, x):
        return self.encoder(x)

    def encode_top(self, z1):
        return self.encoder_top(z1)

    def prior_bottom(self, z2):
        return self.prior(z2)

    def decode(self, z1):
        return self.decoder(z1)

    def __call__(self, x):
        m1, _ = self.encode(x)
        m2, _ = self.encode_top(m1)
        self.prior_bottom(m2)
        return self.decode(m1)


def build_vae(name: str, data_shape, num_params: int, *, latent_dim: int,
              hidden_dims: Sequence[int], activation: str = "relu",
              conv_channels: Sequence[int] = (32, 64), top_latent_dim: int = 0,
              top_hidden_dims: Sequence[int] = ()) -> nn.Module:
    """The VAE named ``name`` (one of ARCHITECTURES) for examples of ``data_shape``.

    Args:
      num_params: decoder outputs per data value (``jaxgen.vae.num_decoder_params``).
      latent_dim: size of z (of z_1 for the hierarchy).
      hidden_dims: deterministic layers between x and z (the decoder mirrors them);
        not used by 'vae_conv', whose layers are ``conv_channels``.
      top_hidden_dims, top_latent_dim: 'vae_hierarchical' only: the layers between z_1
        and z_2, and the size of z_2.
    """
    data_shape = tuple(int(d) for d in data_shape)
    out_shape = data_shape[:-1] + (data_shape[-1] * num_params,)
    hidden, top_hidden = tuple(hidden_dims), tuple(top_hidden_dims)
    if name == "vae_mlp":
        return VAE(GaussianMLP(hidden, latent_dim, activation),
                   MLPDecoder(hidden[::-1], out_shape, activation))
    if name == "vae_conv":
        channels = tuple(conv_channels)
        return VAE(ConvEncoder(channels, latent_dim, activation),
                   ConvDecoder(channels, out_shape, activation))
    if name == "vae_hierarchical":
        return HierarchicalVAE(GaussianMLP(hidden, latent_dim, activation),
                               GaussianMLP(top_hidden, top_latent_dim, activation),
                               GaussianMLP(top_hidden[::-1], latent_dim, activation),
                               MLPDecoder(hidden[::-1], out_shape, activation))
    raise ValueError(f"VAE architecture must be one of {ARCHITECTURES}, got {name!r}")
