"""PixelCNNs: masked convolutions (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel
Recurrent Neural Networks", Sec. 3.4) and the gated PixelCNN with vertical and horizontal
stacks (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders",
Sec. 2.1-2.2).

Both map images (B, H, W, 1) to logits (B, H, W, 1, K) whose entry at pixel i (raster
order) depends on the pixels before i only, so ``jaxgen.autoregressive`` turns them into
exact likelihoods and samples. Single-channel images only: the colour-channel masks of
the PixelRNN paper (R before G before B) are not built.

* Mask A (first layer) hides the centre pixel and everything after it; mask B (later
  layers) shows the centre, whose features already depend only on earlier pixels.
* Stacked masked 3x3 convolutions leave a blind spot up and to the right of each pixel.
  The gated PixelCNN removes it: a vertical stack sees all rows above (its output is
  shifted down one row before it feeds the horizontal stack), a horizontal stack sees
  the pixels to the left in the current row.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.nets.conv import conv2d

MASK_TYPES = ("A", "B")


def causal_mask(kernel_size: int, mask_type: str) -> np.ndarray:
    """(K, K) 0/1 mask of a raster-order masked convolution: the rows above the centre,
    the centre row left of the centre, and the centre itself for mask 'B'."""
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    c = kernel_size // 2
    m = np.zeros((kernel_size, kernel_size), np.float32)
    m[:c] = 1.0
    m[c, :c] = 1.0
    if mask_type == "B":
        m[c, c] = 1.0
    return m


class MaskedConv(nn.Module):
    """K x K convolution whose kernel is multiplied by ``causal_mask`` (stride 1, SAME).

    Attributes:
      features: output channels.
      kernel_size: K, odd.
      mask_type: 'A' or 'B'.
    """

    features: int
    kernel_size: int
    mask_type: str

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        mask = jnp.asarray(causal_mask(k, self.mask_type))[:, :, None, None]
        return conv2d(x, kernel * mask, bias)


def _check_image(x):
    if x.ndim != 4 or x.shape[-1] != 1:
        raise ValueError(f"PixelCNN input must be single-channel images (B, H, W, 1), got "
                         f"shape {x.shape}")
    return x


def _head(h, hidden: int, num_outputs: int, out_shape):
    """ReLU, 1x1 conv, ReLU, 1x1 conv to the logits (van den Oord et al. 2016a, Table 1:
    1x1 layers are trivially causal)."""
    h = nn.Dense(hidden)(nn.relu(h))
    logits = nn.Dense(num_outputs)(nn.relu(h))
    return logits.reshape(out_shape + (num_outputs,))


class PixelCNN(nn.Module):
    """Masked-convolution PixelCNN (van den Oord et al. 2016a, Table 1): a K1 x K1 mask-A
    convolution, ``num_layers`` residual blocks (1x1 to h/2, K x K mask B, 1x1 back to
    h; ReLU before each), then two 1x1 layers to ``num_outputs`` logits per pixel.

    Input: (B, H, W, 1) images in [-1, 1]. Output: (B, H, W, 1, num_outputs).
    """

    num_outputs: int
    channels: int = 64
    num_layers: int = 6
    kernel_size: int = 3
    first_kernel_size: int = 7
    head_channels: int = 128

    @nn.compact
    def __call__(self, x):
        x = _check_image(jnp.asarray(x, jnp.float32))
        h = MaskedConv(self.channels, self.first_kernel_size, "A")(x)
        for _ in range(self.num_layers):
            r = nn.Dense(max(self.channels // 2, 1))(nn.relu(h))
            r = MaskedConv(max(self.channels // 2, 1), self.kernel_size, "B")(nn.relu(r))
            h = h + nn.Dense(self.channels)(nn.relu(r))
        return _head(h, self.head_channels, self.num_outputs, x.shape)


def shift_down(x):
    """x[r - 1] at row r (zeros at row 0): (B, H, W, C)."""
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def shift_right(x, n: int = 1):
    """x[:, c - n] at column c (zeros in the first n columns)."""
    return jnp.pad(x, ((0, 0), (0, 0), (n, 0), (0, 0)))[:, :, :x.shape[2]]


def _gate(h):
    a, b = jnp.split(h, 2, axis=-1)
    return jnp.tanh(a) * jax.nn.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated layer (van den Oord et al. 2016b, Fig. 2): y = tanh(W_f * x) . s(W_g * x)
    on both stacks, the shifted vertical features added to the horizontal ones, and a
    residual 1x1 connection on the horizontal stack.

    The vertical convolution is a K x K kernel masked to the rows up to the centre (row r
    sees rows r - K//2 .. r); the horizontal one a 1 x (K//2 + 1) kernel over columns
    c - K//2 .. c, written as shifted 1x1 matmuls, and for the first layer ('A') over
    c - K//2 .. c - 1.
    """

    channels: int
    kernel_size: int
    first: bool

    @nn.compact
    def __call__(self, v, h):
        k, c = self.kernel_size, self.channels
        vmask = np.zeros((k, k), np.float32)
        vmask[:k // 2 + 1] = 1.0
        kernel = self.param("v_kernel", nn.initializers.lecun_normal(), (k, k, v.shape[-1], 2 * c))
        v_pre = conv2d(v, kernel * jnp.asarray(vmask)[:, :, None, None],
                       self.param("v_bias", nn.initializers.zeros_init(), (2 * c,)))
        shifts = range(1, k // 2 + 1) if self.first else range(0, k // 2 + 1)
        h_pre = sum(nn.Dense(2 * c, use_bias=(n == 1 if self.first else n == 0),
                             name=f"h_tap{n}")(shift_right(h, n) if n else h) for n in shifts)
        h_pre = h_pre + nn.Dense(2 * c, use_bias=False, name="v_to_h")(shift_down(v_pre))
        v_out = _gate(v_pre)
        h_out = nn.Dense(c, name="h_out")(_gate(h_pre))
        if not self.first:
            h_out = h_out + h
        return v_out, h_out


class GatedPixelCNN(nn.Module):
    """Gated PixelCNN without blind spot (van den Oord et al. 2016b): a first gated layer
    of kernel ``first_kernel_size`` (mask A on the horizontal stack), ``num_layers``
    gated layers of kernel ``kernel_size``, and the 1x1 head on the horizontal stack.

    Input: (B, H, W, 1) images in [-1, 1]. Output: (B, H, W, 1, num_outputs).
    """

    num_outputs: int
    channels: int = 64
    num_layers: int = 6
    kernel_size: int = 3
    first_kernel_size: int = 7
    head_channels: int = 128

    @nn.compact
    def __call__(self, x):
        x = _check_image(jnp.asarray(x, jnp.float32))
        v, h = GatedLayer(self.channels, self.first_kernel_size, first=True)(x, x)
        for _ in range(self.num_layers):
            v, h = GatedLayer(self.channels, self.kernel_size, first=False)(v, h)
        return _head(h, self.head_channels, self.num_outputs, x.shape)


ARCHITECTURES = ("pixelcnn", "gated_pixelcnn")


def build_pixelcnn(name: str, num_outputs: int, *, channels: int, num_layers: int,
                   kernel_size: int, first_kernel_size: int, head_channels: int) -> nn.Module:
    """The PixelCNN named ``name`` (one of ``ARCHITECTURES``)."""
    cls = {"pixelcnn": PixelCNN, "gated_pixelcnn": GatedPixelCNN}.get(name)
    if cls is None:
        raise ValueError(f"name must be one of {ARCHITECTURES}, got {name!r}")
    return cls(num_outputs=num_outputs, channels=channels, num_layers=num_layers,
               kernel_size=kernel_size, first_kernel_size=first_kernel_size,
               head_channels=head_channels)


__all__ = ["ARCHITECTURES", "GatedLayer", "GatedPixelCNN", "MASK_TYPES", "MaskedConv",
           "PixelCNN", "build_pixelcnn", "causal_mask", "shift_down", "shift_right"]
