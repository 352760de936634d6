"""InceptionV3 as used for the Frechet Inception Distance (FID), inference only.

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to
a Local Nash Equilibrium", Sec. 3) compares Gaussians fitted to the 2048-d "pool3"
activations of an ImageNet InceptionV3 (Szegedy et al. 2016, "Rethinking the Inception
Architecture for Computer Vision", Table 1 and Figs. 5-7). Published FIDs use one
particular network: the TensorFlow graph ``inception-2015-12-05`` of the original
TTUR code, which pytorch-fid (M. Seitzer, github.com/mseitzer/pytorch-fid) reproduces
in PyTorch together with its weights. This module builds that variant. It differs from
torchvision's ``Inception3`` in three places, all needed to reproduce the TF features:

* the average-pool branches of the A, C and first E blocks (Mixed_5b-d, Mixed_6b-e,
  Mixed_7b) divide by the number of *valid* pixels under the 3x3 window
  (``count_include_pad=False``, TF's ``SAME`` average pooling);
* the pool branch of the last E block (Mixed_7c) uses 3x3 *max* pooling (stride 1,
  padding 1) instead of average pooling;
* the classifier has 1008 outputs (the TF graph's label space), not 1000.

Every convolution is conv (no bias) -> batch norm (running statistics, eps = 1e-3)
-> ReLU; there is no auxiliary classifier and no dropout. Module and variable names
follow pytorch-fid's ``state_dict`` keys (``Mixed_6b.branch7x7_2.conv.weight`` is
``params['Mixed_6b']['branch7x7_2']['conv']['kernel']``), so weights map one to one.

Input convention (what makes features comparable with published FIDs): images NHWC,
float in [-1, 1] (jaxgen's convention, which is also what pytorch-fid feeds the network
after its ``2 * x - 1``), 1 or 3 channels (grayscale is repeated to RGB), any H and W.
They are resized to 299x299 by bilinear interpolation with half-pixel centres and *no*
anti-aliasing, which equals PyTorch's ``F.interpolate(x, (299, 299), mode='bilinear',
align_corners=False)`` as called by pytorch-fid. The resize changes the features and
hence the FID: other resizers (anti-aliased, bicubic, TF1's legacy bilinear, PIL)
shift FID by amounts that can exceed differences between models (Parmar et al. 2022,
"On Aliased Resizing and Surprising Subtleties in GAN Evaluation"). Even with identical
weights, pytorch-fid reports ~1e-3 relative FID differences to the TF original, which it
attributes to the interpolation and library backends.

Weights are not bundled: ``jaxgen.nets.inception_weights`` loads them from a file the
user converts from pytorch-fid's release, and wraps the loaded network as a feature map.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["FID_WEIGHTS_URL", "InceptionV3", "apply_inception", "check_images", "preprocess"]

FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
INPUT_SIZE = 299
POOL_DIM = 2048
NUM_LOGITS = 1008
# The TF graph's batch-norm epsilon; torchvision's BasicConv2d uses the same value.
BN_EPS = 1e-3

# Features must not depend on an accelerator's reduced-precision default for f32
# convolutions (TF32 on recent GPUs), so every contraction runs at full precision.
_PRECISION = lax.Precision.HIGHEST


class BasicConv2d(nn.Module):
    """Conv (no bias) -> inference batch norm -> ReLU: (N, H, W, C) -> (N, H', W', features).

    ``padding`` is the symmetric (pad_h, pad_w) of PyTorch's ``Conv2d(padding=...)``.
    """

    features: int
    kernel_size: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)
    precision: Any = _PRECISION

    @nn.compact
    def __call__(self, x):
        ph, pw = self.padding
        x = nn.Conv(self.features, self.kernel_size, strides=(self.stride, self.stride),
                    padding=((ph, ph), (pw, pw)), use_bias=False, precision=self.precision,
                    name="conv")(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name="bn")(x)
        return nn.relu(x)


def _avg_pool_3x3(x):
    """3x3 stride-1 average over valid pixels only (TF 'SAME' avg pool, count_include_pad=False)."""
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_same(x):
    """3x3 stride-1 max pool with -inf padding 1 (spatial size kept)."""
    return nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))


def _max_pool_3x3_s2(x):
    """3x3 stride-2 max pool without padding: H -> (H - 3) // 2 + 1."""
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b-d): 64 + 64 + 96 + pool_features output channels."""

    pool_features: int
    precision: Any = _PRECISION

    @nn.compact
    def __call__(self, x):
        conv = functools.partial(BasicConv2d, precision=self.precision)
        b1 = conv(64, (1, 1), name="branch1x1")(x)
        b5 = conv(48, (1, 1), name="branch5x5_1")(x)
        b5 = conv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
        b3 = conv(64, (1, 1), name="branch3x3dbl_1")(x)
        b3 = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
        b3 = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
        bp = conv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a): 384 + 96 + C_in output channels."""

    precision: Any = _PRECISION

    @nn.compact
    def __call__(self, x):
        conv = functools.partial(BasicConv2d, precision=self.precision)
        b3 = conv(384, (3, 3), stride=2, name="branch3x3")(x)
        bd = conv(64, (1, 1), name="branch3x3dbl_1")(x)
        bd = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = conv(96, (3, 3), stride=2, name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b-e): 4 * 192 output channels."""

    channels_7x7: int
    precision: Any = _PRECISION

    @nn.compact
    def __call__(self, x):
        conv = functools.partial(BasicConv2d, precision=self.precision)
        c7 = self.channels_7x7
        b1 = conv(192, (1, 1), name="branch1x1")(x)
        b7 = conv(c7, (1, 1), name="branch7x7_1")(x)
        b7 = conv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = conv(c7, (1, 1), name="branch7x7dbl_1")(x)
        bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = conv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = conv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = conv(192, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a): 320 + 192 + C_in output channels."""

    precision: Any = _PRECISION

    @nn.compact
    def __call__(self, x):
        conv = functools.partial(BasicConv2d, precision=self.precision)
        b3 = conv(192, (1, 1), name="branch3x3_1")(x)
        b3 = conv(320, (3, 3), stride=2, name="branch3x3_2")(b3)
        b7 = conv(192, (1, 1), name="branch7x7x3_1")(x)
        b7 = conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = conv(192, (3, 3), stride=2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3/3x1 convolutions (Mixed_7b, 7c): 320 + 768 + 768 + 192 = 2048.

    ``pool='avg'`` (Mixed_7b) or ``'max'`` (Mixed_7c, the TF graph's quirk) in the pool branch.
    """

    pool: str = "avg"
    precision: Any = _PRECISION

    @nn.compact
    def __call__(self, x):
        conv = functools.partial(BasicConv2d, precision=self.precision)
        b1 = conv(320, (1, 1), name="branch1x1")(x)
        b3 = conv(384, (1, 1), name="branch3x3_1")(x)
        b3 = jnp.concatenate([conv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                              conv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=-1)
        bd = conv(448, (1, 1), name="branch3x3dbl_1")(x)
        bd = conv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate([conv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                              conv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=-1)
        pooled = _avg_pool_3x3(x) if self.pool == "avg" else _max_pool_3x3_same(x)
        bp = conv(192, (1, 1), name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


def check_images(images) -> None:
    """Raises ValueError unless ``images`` is (N, H, W, 1 or 3) floating point."""
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError("InceptionV3 expects images of shape (N, H, W, C) with C = 1 or 3, "
                         f"got shape {tuple(images.shape)}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(f"InceptionV3 expects float images in [-1, 1], got dtype {images.dtype}; "
                         "convert uint8 images with x / 127.5 - 1")


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of PyTorch's bilinear resize with ``align_corners=False``.

    Output pixel i reads the input at s = (i + 0.5) * n_in / n_out - 0.5, clamped below
    at 0, from pixels floor(s) and floor(s) + 1 (both clamped to n_in - 1); no
    anti-aliasing, also when downsampling. Built in float64 from the static shapes, so
    the sample positions carry no float32 rounding.
    """
    rows = np.arange(n_out)
    src = np.maximum((rows + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    m = np.zeros((n_out, n_in))
    np.add.at(m, (rows, i0), 1.0 - frac)
    np.add.at(m, (rows, i1), frac)
    return m.astype(np.float32)


def preprocess(images: jax.Array) -> jax.Array:
    """Network input from jaxgen images: bilinear resize to 299x299, grayscale to RGB.

    The resize is pytorch-fid's ``F.interpolate(x, (299, 299), mode='bilinear',
    align_corners=False)`` (half-pixel centres, no anti-aliasing; see
    ``_bilinear_matrix``), written out as two matrix products rather than
    ``jax.image.resize`` so that it cannot drift with that function's defaults
    (which anti-alias when downsampling) and carries no float32 error in the sample
    positions.

    Args:
        images: (N, H, W, C) float in [-1, 1], C = 1 or 3, any H, W >= 1.

    Returns:
        (N, 299, 299, 3) float32.
    """
    check_images(images)
    n, h, w, c = images.shape
    x = images.astype(jnp.float32)
    if h != INPUT_SIZE:
        x = jnp.einsum("oh,nhwc->nowc", _bilinear_matrix(h, INPUT_SIZE), x, precision=_PRECISION)
    if w != INPUT_SIZE:
        x = jnp.einsum("ow,nhwc->nhoc", _bilinear_matrix(w, INPUT_SIZE), x, precision=_PRECISION)
    # Repeat after resizing: the resize acts per channel, so this is cheaper and equal.
    return jnp.broadcast_to(x, (n, INPUT_SIZE, INPUT_SIZE, 3)) if c == 1 else x


class InceptionV3(nn.Module):
    """The FID InceptionV3 (pytorch-fid's ``fid_inception_v3``), inference mode.

    Attributes:
        include_logits: also build the 1008-way ``fc`` layer and return its logits.
        resize_input: apply ``preprocess`` (grayscale -> RGB, resize to 299x299) first;
            if False, the input must already be (N, 299, 299, 3).
        precision: precision of every convolution and of ``fc``.
    """

    include_logits: bool = False
    resize_input: bool = True
    precision: Any = _PRECISION

    @nn.compact
    def __call__(self, images):
        """Pool3 features (and logits) of a batch of images.

        Args:
            images: (N, H, W, C) float in [-1, 1], C = 1 or 3 (see ``resize_input``).

        Returns:
            pool3 features (N, 2048), or the pair (features (N, 2048), logits (N, 1008))
            when ``include_logits``.
        """
        if self.resize_input:
            x = preprocess(images)
        else:
            if images.ndim != 4 or images.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
                raise ValueError("InceptionV3(resize_input=False) expects (N, 299, 299, 3) "
                                 f"input, got shape {tuple(images.shape)}")
            x = images
        conv = functools.partial(BasicConv2d, precision=self.precision)
        p = dict(precision=self.precision)
        x = conv(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)          # 149x149x32
        x = conv(32, (3, 3), name="Conv2d_2a_3x3")(x)                    # 147x147x32
        x = conv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)    # 147x147x64
        x = _max_pool_3x3_s2(x)                                           # 73x73x64
        x = conv(80, (1, 1), name="Conv2d_3b_1x1")(x)                    # 73x73x80
        x = conv(192, (3, 3), name="Conv2d_4a_3x3")(x)                   # 71x71x192
        x = _max_pool_3x3_s2(x)                                           # 35x35x192
        x = InceptionA(32, **p, name="Mixed_5b")(x)                       # 35x35x256
        x = InceptionA(64, **p, name="Mixed_5c")(x)                       # 35x35x288
        x = InceptionA(64, **p, name="Mixed_5d")(x)                       # 35x35x288
        x = InceptionB(**p, name="Mixed_6a")(x)                           # 17x17x768
        x = InceptionC(128, **p, name="Mixed_6b")(x)
        x = InceptionC(160, **p, name="Mixed_6c")(x)
        x = InceptionC(160, **p, name="Mixed_6d")(x)
        x = InceptionC(192, **p, name="Mixed_6e")(x)                      # 17x17x768
        x = InceptionD(**p, name="Mixed_7a")(x)                           # 8x8x1280
        x = InceptionE("avg", **p, name="Mixed_7b")(x)                    # 8x8x2048
        x = InceptionE("max", **p, name="Mixed_7c")(x)                    # 8x8x2048
        pool = jnp.mean(x, axis=(1, 2))                                   # (N, 2048)
        if not self.include_logits:
            return pool
        return pool, nn.Dense(NUM_LOGITS, precision=self.precision, name="fc")(pool)


@functools.partial(jax.jit, static_argnames=("include_logits",))
def _network(variables, x, include_logits=False):
    return InceptionV3(include_logits=include_logits, resize_input=False).apply(variables, x)


# Separate jits: the network then compiles once per batch size, whatever the image size.
_preprocess = jax.jit(preprocess)


def apply_inception(variables: Mapping, images, include_logits: bool = False):
    """``InceptionV3(include_logits).apply(variables, images)``, compiled once per batch size.

    Args:
        variables: from ``load_inception_variables(path, include_logits)``.
        images: (N, H, W, C) float in [-1, 1], C = 1 or 3.
        include_logits: also return the (N, 1008) logits.

    Returns:
        (N, 2048) pool3 features, or (features, logits (N, 1008)).
    """
    return _network(variables, _preprocess(images), include_logits=include_logits)
