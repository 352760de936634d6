"""Image conditioning for the diffusion family: super-resolution.

Saharia et al. 2021 ("Image Super-Resolution via Iterative Refinement", SR3, Sec. 2-3; the
lectures' eps_theta(x_t, t; y) with y a low-resolution image) train the denoiser on
(low-res y, high-res x) pairs and condition it by concatenating y, upsampled to the
output size with bicubic interpolation, to x_t along the channels. Here y is derived
from each batch: the high-resolution image area-downsampled to ``diffusion.low_res_size``
(every low-res pixel the mean of a k x k block). Sampling starts from noise of the
high-resolution shape and keeps the same y at every step.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen.core import xla_options
from jaxgen.errors import ConfigError

CONDITIONS = ("none", "low_res")


def low_res_size(config: ml_collections.ConfigDict):
    """``diffusion.low_res_size`` when the config asks for super-resolution, else None."""
    if config.diffusion.get("condition", "none") != "low_res":
        return None
    return int(config.diffusion.low_res_size)


def validate_config(config: ml_collections.ConfigDict) -> None:
    from jaxgen.train.validation import choice, positive_int

    if choice(config, "diffusion.condition", CONDITIONS) == "low_res":
        positive_int(config, "diffusion.low_res_size")
        if config.model.num_classes:
            raise ConfigError("model.num_classes", config.model.num_classes, "must be 0 with "
                              "diffusion.condition='low_res' (the condition is the low-res "
                              "image)")


def check_data(config: ml_collections.ConfigDict, example_shape) -> None:
    """Super-resolution needs images whose sides the low-res size divides."""
    size = low_res_size(config)
    if size is None:
        return
    shape = tuple(int(d) for d in example_shape)
    if len(shape) != 3:
        raise ConfigError("diffusion.condition", "low_res", f"needs images (H, W, C), but "
                          f"data.name={config.data.name!r} gives examples of shape {shape}")
    h, w = shape[:2]
    if size >= h or h % size or w % (h // size):
        raise ConfigError("diffusion.low_res_size", size, f"must be smaller than the image "
                          f"height {h} and divide it (and the factor {h}/{size} the width {w})")


def area_downsample(x, size: int):
    """(B, H, W, C) -> (B, size, W * size / H, C): the mean of each k x k block,
    k = H / size (an exact area average, no interpolation)."""
    b, h, w, c = x.shape
    if h % size or w % (h // size):
        raise ValueError(f"low-res size {size} must divide the image height {h} (and the "
                         f"factor the width {w})")
    k = h // size
    return jnp.mean(x.reshape(b, size, k, w // k, k, c), axis=(2, 4))


def upsample(y, shape, method: str = "bicubic"):
    """Resizes low-res images (B, h, w, C) to ``shape`` (B, H, W, C) ('bicubic',
    'nearest' or any ``jax.image.resize`` method)."""
    return jax.image.resize(y, tuple(shape), method=method)


def condition_from_images(x, size: int):
    """The conditioning input of high-res images x: their low-res version, bicubic
    upsampled back to x's shape (what the network sees beside x_t)."""
    return upsample(area_downsample(x, size), x.shape)


def super_resolve(family, params, low_res, rng):
    """High-resolution samples of the low-res images ``low_res`` (B, h, w, C) in [-1, 1]
    from a super-resolution diffusion family (``diffusion.condition='low_res'``) with
    its configured sampler. Returns (B, H, W, C); example i's noise comes from
    ``fold_in(rng, i)``."""
    if getattr(family, "low_res", None) is None:
        raise ValueError("super_resolve needs a family trained with "
                         "diffusion.condition='low_res'")
    return family.super_resolve(params, low_res, rng)


def sr_psnr(family, params, images, rng) -> dict:
    """PSNR (dB on the [0, 1] scale, mean over images) against the ground truth
    ``images`` (B, H, W, C) of the diffusion super-resolution of their low-res versions,
    and of nearest and bicubic upsampling of the same low-res input."""
    from jaxgen.train.autoencoder import psnr

    low = area_downsample(images, family.low_res)
    out = {"psnr_sr": psnr(jnp.clip(super_resolve(family, params, low, rng), -1, 1), images)}
    for method in ("nearest", "bicubic"):
        up = jnp.clip(upsample(low, images.shape, method), -1.0, 1.0)
        out[f"psnr_{method}"] = psnr(up, images)
    return {k: jnp.mean(v) for k, v in out.items()}


def save_sr_picture(family, params, images, path: str, rng) -> str:
    """Writes a PNG of three rows per group of up to 10 images: the low-res input (shown
    nearest-upsampled), the diffusion super-resolution, the ground truth."""
    from jaxgen import viz

    images = jnp.asarray(images)
    low = area_downsample(images, family.low_res)
    sr = np.asarray(xla_options.jit(family.super_resolve)(params, low, rng))
    shown = np.asarray(upsample(low, images.shape, "nearest"))
    rows = []
    for start in range(0, len(images), 10):
        sl = slice(start, start + 10)
        rows += [shown[sl], sr[sl], np.asarray(images[sl])]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return viz.save_grid(np.concatenate(rows), path, nrow=min(10, len(images)))


__all__ = ["CONDITIONS", "area_downsample", "check_data", "condition_from_images",
           "low_res_size", "save_sr_picture", "sr_psnr", "super_resolve", "upsample",
           "validate_config"]
