"""DCGAN generator and discriminator (Radford et al. 2016, sec. 3), their conditional
variants: a generator with conditional batch normalisation and a projection
discriminator (Miyato & Koyama 2018).

The lectures' architecture guidelines, followed exactly:

* no pooling: strided convolutions in the discriminator, fractionally strided
  (transposed) convolutions in the generator;
* batchnorm in both players, except the generator's output layer and the
  discriminator's input layer (Radford et al., sec. 3);
* no fully connected hidden layers: the generator's first layer is the projection of z
  reshaped into a 4-D tensor, the discriminator's last layer a linear read-out of the
  flattened last convolution (neither is a hidden layer);
* ReLU in the generator except the output (tanh); LeakyReLU (slope 0.2) in every
  discriminator layer.

The discriminator's normalisation is configurable: a critic trained with a gradient
penalty must not use batch normalisation (its per-example input gradients would mix the
batch; Gulrajani et al. 2017, sec. 4), so it takes ``norm='layer'``.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nets.adain import ConditionalBatchNorm
from jaxgen.nets.conv import parity_conv2d

NORMS = ("batch", "layer", "spectral", "none")
_KERNEL = (4, 4)
_BN_MOMENTUM = 0.9


# A stride-2 transposed convolution with a 4x4 kernel computed as a 3x3 convolution to
# four phases followed by depth-to-space (Shi et al. 2016, "sub-pixel convolution"): output
# pixel 2m + a (per axis) sums taps t of input m + s - 1 for the pairs (s, t) of phase a.
# Derived from lax.conv_transpose(..., strides 2, 'SAME') and tested against it.
_PHASE_TAPS = (((0, 0), (1, 2)), ((1, 1), (2, 3)))
# Output channels from which the phases are four 2x2 convolutions (class doc).
_PHASE_CONV_MIN_FEATURES = 16


class FractionallyStridedConv(nn.Module):
    """The 4x4, stride-2 fractionally strided (transposed) convolution of DCGAN, 'SAME'
    padding: (B, H, W, C_in) -> (B, 2H, 2W, features), equal to
    ``nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')`` with the same
    kernel.

    XLA:CPU runs the input-dilated convolution of ``lax.conv_transpose`` and its weight
    gradient ~10x slower than a plain 3x3 convolution at DCGAN's shapes, so the same
    linear map is computed from the four output phases (sub-pixel convolution): each
    output parity (a, b) reads a 2x2 window of the input with the kernel taps
    ``kernel[a::2, b::2]``. With at least ``_PHASE_CONV_MIN_FEATURES`` output channels
    the four phases are four 2x2 convolutions (a quarter of the 3x3 form's taps); below
    that, where one convolution beats four small ones, a single 3x3 convolution to
    4 * features channels with the unused taps zero. Either way a depth-to-space
    interleave follows. Forward + backward at batch 64 (2 cores): 7x7, 64 -> 32
    channels 5.6 -> 2.8 ms and 7x7, 256 -> 128 76.5 -> 33.8 ms with the 2x2 form; at
    14x14, 32 -> 1 the 3x3 form's 1.9 ms against 2.6.
    """

    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        if x.ndim != 4:
            raise ValueError(f"FractionallyStridedConv expects (B, H, W, C), got {x.shape}")
        cout = self.features
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (4, 4, x.shape[-1], cout))
        if cout >= _PHASE_CONV_MIN_FEATURES:
            y = parity_conv2d(x, [[kernel[a::2, c::2] for c in (0, 1)] for a in (0, 1)])
        else:
            y = self._four_phase_3x3(x, kernel)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (cout,))
        return y

    @staticmethod
    def _four_phase_3x3(x, kernel):
        """The four phases as one 3x3 convolution to 4 * C_out channels, then interleaved."""
        b, h, w, cin = x.shape
        cout = kernel.shape[-1]
        w3 = jnp.zeros((3, 3, cin, 2, 2, cout), kernel.dtype)
        for ah in (0, 1):
            for sh, th in _PHASE_TAPS[ah]:
                for aw in (0, 1):
                    for sw, tw in _PHASE_TAPS[aw]:
                        w3 = w3.at[sh, sw, :, ah, aw, :].set(kernel[th, tw])
        y = jax.lax.conv_general_dilated(x, w3.reshape(3, 3, cin, 4 * cout), (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y = y.reshape(b, h, w, 2, 2, cout).transpose(0, 1, 3, 2, 4, 5)
        return y.reshape(b, 2 * h, 2 * w, cout)


class DCGANGenerator(nn.Module):
    """z (B, L) [, labels (B,)] -> images (B, H, W, C) in (-1, 1).

    The image side halves ``len(channels)`` times from the output back to the projection:
    for 28x28 and channels (64, 32), z is projected to 7x7x64, then upsampled to 14x14x32
    and 28x28xC.

    Attributes:
      out_shape: (H, W, C) of the images; H and W divisible by 2 ** len(channels).
      channels: feature channels from the projection upwards.
      num_classes: > 0: a conditional generator. The label enters twice: one-hot,
        concatenated to z before the projection (Mirza & Osindero 2014), which gives each
        class its own spatial map at the lowest resolution; and through conditional batch
        normalisation, a gamma^y, beta^y per class in every normalised layer.
      label_input: with num_classes > 0, whether the one-hot label joins z at the input.
        Without it the label acts only through per-channel gains and shifts, the same at
        every position, and spatial layout follows the class slowly: on a toy where the
        class alone decides the quadrant of a square (``tests/train/test_gan_family.py``)
        300 steps put 50% of the squares in the requested quadrant without it, 100% with.
      bn_momentum: momentum of the batch-norm running averages; 0 makes a training-mode
        pass store the batch's own statistics (standing statistics,
        ``jaxgen.train.gan.GANFamily.standing_stats``).
    """

    out_shape: Sequence[int]
    channels: Sequence[int] = (64, 32)
    num_classes: int = 0
    bn_momentum: float = _BN_MOMENTUM
    label_input: bool = True

    def _norm(self, h, labels, train, name):
        if self.num_classes:
            return ConditionalBatchNorm(self.num_classes, momentum=self.bn_momentum,
                                        name=name)(h, labels, train=train)
        return nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                            name=name)(h)

    @nn.compact
    def __call__(self, z, labels=None, *, train: bool = False):
        if z.ndim != 2:
            raise ValueError(f"DCGANGenerator expects z of shape (B, L), got {z.shape}")
        if self.num_classes and (labels is None or labels.shape != (z.shape[0],)):
            raise ValueError(f"a conditional generator needs labels of shape ({z.shape[0]},)")
        height, width, out_c = self.out_shape
        factor = 2 ** len(self.channels)
        if height % factor or width % factor:
            raise ValueError(f"image size {height}x{width} must be divisible by {factor}")
        h0, w0 = height // factor, width // factor
        inputs = z
        if self.num_classes and self.label_input:
            inputs = jnp.concatenate([z, jax.nn.one_hot(labels, self.num_classes, dtype=z.dtype)],
                                     axis=-1)
        h = nn.Dense(h0 * w0 * self.channels[0], use_bias=False, name="project")(inputs)
        h = h.reshape(z.shape[0], h0, w0, self.channels[0])
        h = nn.relu(self._norm(h, labels, train, "norm_0"))
        for i, ch in enumerate(self.channels[1:], start=1):
            h = FractionallyStridedConv(ch, use_bias=False, name=f"up_{i}")(h)
            h = nn.relu(self._norm(h, labels, train, f"norm_{i}"))
        h = FractionallyStridedConv(out_c, name="out")(h)
        return jnp.tanh(h)


class DCGANDiscriminator(nn.Module):
    """images (B, H, W, C) [, labels (B,)] -> (B,) logits / critic values.

    Attributes:
      channels: channels of the strided convolutions (each halves the image side).
      norm: 'batch', 'layer' or 'none' after every convolution but the first; or
        'spectral': every convolution and the read-out spectrally normalised (Miyato et
        al. 2018), no other normalisation.
      num_classes: > 0: projection discriminator, ``f(x, y) = psi(h(x)) +
        <embed(y), phi(x)>`` (Miyato & Koyama 2018, eq. 3): psi the linear read-out of the
        flattened last convolution h(x), phi(x) its global sum pooling (one value per
        channel, as in their discriminators), so each class embedding has one weight per
        channel.
    """

    channels: Sequence[int] = (32, 64)
    norm: str = "batch"
    num_classes: int = 0

    @nn.compact
    def __call__(self, x, labels=None, *, train: bool = False):
        if x.ndim != 4:
            raise ValueError(f"DCGANDiscriminator expects images (B, H, W, C), got {x.shape}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.num_classes and (labels is None or labels.shape != (x.shape[0],)):
            raise ValueError(f"a projection discriminator needs labels of shape ({x.shape[0]},)")
        spectral = self.norm == "spectral"

        def layer(module, h):
            # Spectral norm (Miyato et al. 2018) divides each weight by its largest singular
            # value, estimated by one power iteration per training call; the iterate u lives
            # in 'batch_stats' and is only updated in training mode.
            if spectral:
                return nn.SpectralNorm(module, name=f"sn_{module.name}")(h, update_stats=train)
            return module(h)

        h = x
        for i, ch in enumerate(self.channels):
            h = layer(nn.Conv(ch, _KERNEL, strides=(2, 2), padding="SAME",
                              use_bias=(i == 0 or self.norm in ("none", "spectral")),
                              name=f"conv_{i}"), h)
            if i > 0 and self.norm == "batch":
                h = nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM,
                                 name=f"norm_{i}")(h)
            elif i > 0 and self.norm == "layer":
                h = nn.LayerNorm(reduction_axes=(-3, -2, -1), name=f"norm_{i}")(h)
            h = nn.leaky_relu(h, 0.2)
        out = layer(nn.Dense(1, name="out"), h.reshape(h.shape[0], -1))[:, 0]
        if self.num_classes:
            phi = jnp.sum(h, axis=(1, 2))
            embed = nn.Embed(self.num_classes, phi.shape[-1], name="projection")(labels)
            out = out + jnp.sum(embed * phi, axis=-1)
        return out
