"""Decoder log-likelihoods log p(x|z), one value per example (summed over the data axes).

Three observation models, each for the data it is defined on:

* ``'bernoulli'``: binary data in {0, 1} (binarized MNIST); the decoder gives logits.
  The data must be binary: ``binarize`` draws x_bin ~ Bernoulli((x + 1) / 2) from images
  in [-1, 1] (the dynamic binarization of Burda et al. 2015).
* ``'gaussian'``: continuous data, N(x; mean, sigma^2) with a fixed variance (the
  lectures' squared-error loss up to a constant) or a learned one (a second decoder
  output per value).
* ``'discretized_logistic'``: 8-bit images in [-1, 1] on the grid -1 + 2k/255; the
  probability of x's bin under a logistic (Salimans et al. 2017, "PixelCNN++", Sec. 2.1,
  one component), so that the log-likelihood is a log-probability and comparable across
  models in bits/dim.

Values are checked when they are concrete (outside ``jit``): binary targets for
Bernoulli, the 8-bit grid for the discretized logistic. Under ``jit`` the values cannot
be inspected without a host transfer; the training family binarizes and checks the data
source itself (``jaxgen.train.vae``).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.core import checks
from jaxgen.core.gaussians import discretized_symmetric_log_likelihood
from jaxgen.core.gaussians import gaussian_log_likelihood as _gaussian_elementwise
from jaxgen.core.rng import per_example_keys
from jaxgen.vae.latent import sum_per_example

LIKELIHOODS = ("bernoulli", "gaussian", "discretized_logistic")

# Lower bounds on learned log scales where decoder outputs are split into parameters:
# log_scale >= -7 as in the PixelCNN++ code; the Gaussian's log variance correspondingly
# >= -14. Without them a decoder can drive the scale of a constant pixel to zero and the
# loss to -inf.
MIN_LOG_SCALE = -7.0
MIN_LOGVAR = 2.0 * MIN_LOG_SCALE


def _check_target(x, param, param_name: str) -> None:
    checks.check_float_array("x", x)
    checks.check_batched("x", x)
    if jnp.shape(param) != jnp.shape(x):
        raise ValueError(f"{param_name} must have the shape of the data x "
                         f"{tuple(jnp.shape(x))}, got {tuple(jnp.shape(param))} (a decoder "
                         "built for another image shape?)")


def check_binary(x) -> None:
    """Raises ValueError if concrete ``x`` holds anything but 0 and 1."""
    v = checks.concrete(x)
    if v is None or v.size == 0:
        return
    bad = (v != 0) & (v != 1)
    if bad.any():
        raise ValueError(
            "the Bernoulli likelihood needs binary data in {0, 1}, got "
            f"{checks.first_bad(v, bad)}; binarize images in [-1, 1] with "
            "vae.binarize(rng, x), or use the 'gaussian' or 'discretized_logistic' "
            "likelihood")


def check_8bit(x, num_bins: int = 256) -> None:
    """Raises ValueError if concrete ``x`` is not on the grid -1 + 2k/(num_bins - 1)."""
    v = checks.concrete(x)
    if v is None or v.size == 0:
        return
    checks.check_range("x", v, -1.0, 1.0, slack=1e-6,
                       where="discretized_logistic: ")
    k = (v.astype(np.float64) + 1.0) * (num_bins - 1) / 2.0
    bad = np.abs(k - np.round(k)) > 1e-3
    if bad.any():
        raise ValueError(f"discretized_logistic: x must lie on the {num_bins}-level grid "
                         f"-1 + 2k/{num_bins - 1} (images x / 127.5 - 1 for uint8), got "
                         f"{checks.first_bad(v, bad)}; use the 'gaussian' likelihood for "
                         "continuous data")


def binarize(rng: chex.PRNGKey, x: chex.Array) -> chex.Array:
    """x_bin ~ Bernoulli((x + 1) / 2) for images x in [-1, 1]: float {0, 1}, same shape.

    Example b uses ``fold_in(rng, b)``: with a fixed ``rng`` a fixed batch always gives
    the same binary images (evaluation); a fresh ``rng`` per step gives the dynamic
    binarization of Burda et al. (2015).
    """
    checks.check_float_array("x", x)
    checks.check_batched("x", x)
    checks.check_range("x", x, -1.0, 1.0, slack=1e-6, where="binarize: ")
    keys = per_example_keys(rng, jnp.shape(x)[0])
    u = jax.vmap(lambda k: jax.random.uniform(k, jnp.shape(x)[1:], x.dtype))(keys)
    return (u < 0.5 * (x + 1.0)).astype(x.dtype)


def bernoulli_log_likelihood(x: chex.Array, logits: chex.Array) -> chex.Array:
    """sum_d x_d log p_d + (1 - x_d) log(1 - p_d), p = sigmoid(logits): (B,) nats.

    Computed as x * logits - softplus(logits), exact and finite for any logits.

    Args:
      x: (B, ...) binary targets in {0, 1}.
      logits: (B, ...) decoder outputs, same shape.
    """
    _check_target(x, logits, "logits")
    check_binary(x)
    return sum_per_example(x * logits - jax.nn.softplus(logits))


def gaussian_log_likelihood(x: chex.Array, mean: chex.Array,
                            logvar: chex.Array) -> chex.Array:
    """sum_d log N(x_d; mean_d, exp(logvar_d)): (B,) nats (a density, not a probability).

    Args:
      x, mean: (B, ...) data and decoder mean.
      logvar: a scalar (fixed variance) or (B, ...) (learned, per value).
    """
    _check_target(x, mean, "mean")
    checks.check_coefficient("logvar", logvar, "x", x)
    return sum_per_example(jnp.broadcast_to(_gaussian_elementwise(x, mean, logvar),
                                            jnp.shape(x)))


def _log_sigmoid(y):
    return -jax.nn.softplus(-y)


def discretized_logistic_log_likelihood(x: chex.Array, mean: chex.Array,
                                        log_scale: chex.Array, *,
                                        num_bins: int = 256) -> chex.Array:
    """log P(bin of x) under a logistic(mean, exp(log_scale)), summed: (B,) nats.

    Salimans et al. (2017), Sec. 2.1 with one mixture component: bin k of the grid
    x_k = -1 + 2k/(num_bins - 1) is [x_k - h, x_k + h], h = 1/(num_bins - 1), and the
    two extreme bins extend to -inf and +inf, so the probabilities of all bins sum to 1.
    The CDF difference is taken in log space on the side of the distribution where the
    bin lies (``jaxgen.core.gaussians.discretized_symmetric_log_likelihood``), so tails
    give large finite negative values rather than log 0.

    Args:
      x: (B, ...) data on the grid (e.g. uint8 images / 127.5 - 1).
      mean, log_scale: (B, ...) decoder outputs (log_scale a scalar is allowed).
      num_bins: quantisation levels (256 for 8-bit data).
    """
    checks.check_int("num_bins", num_bins, minimum=2)
    _check_target(x, mean, "mean")
    checks.check_coefficient("log_scale", log_scale, "x", x)
    check_8bit(x, num_bins)
    # The standard logistic: log F(y) = log sigmoid(y), log f(y) = y - 2 softplus(y).
    log_p = discretized_symmetric_log_likelihood(
        x, mean, log_scale, log_cdf=_log_sigmoid,
        log_pdf=lambda y: y - 2.0 * jax.nn.softplus(y), num_bins=num_bins)
    return sum_per_example(log_p)


# ---------------------------------------------------------------------------------------
# Decoder outputs -> likelihood parameters.
# ---------------------------------------------------------------------------------------


def num_decoder_params(likelihood: str, learned_variance: bool = False) -> int:
    """How many outputs per data value a decoder needs: 1 (logits, or a mean with fixed
    variance) or 2 (mean and log variance / log scale, concatenated on the last axis)."""
    checks.check_choice("likelihood", likelihood, LIKELIHOODS)
    if likelihood == "discretized_logistic" or (likelihood == "gaussian" and learned_variance):
        return 2
    return 1


def _split(out, x_shape, likelihood):
    if jnp.shape(out)[:-1] != tuple(x_shape[:-1]) or jnp.shape(out)[-1] != 2 * x_shape[-1]:
        want = tuple(x_shape[:-1]) + (2 * x_shape[-1],)
        raise ValueError(f"{likelihood}: the decoder output must hold two parameters per "
                         f"value, shape {want} for data of shape {tuple(x_shape)}, got "
                         f"{tuple(jnp.shape(out))}")
    return jnp.split(out, 2, axis=-1)


def decoder_log_likelihood(likelihood: str, x: chex.Array, out: chex.Array, *,
                           logvar=None, num_bins: int = 256) -> chex.Array:
    """log p(x|z) from a decoder's raw output ``out``: (B,) nats.

    Args:
      likelihood: one of LIKELIHOODS.
      x: (B, ...) data (binary for 'bernoulli', the 8-bit grid for
        'discretized_logistic').
      out: decoder output: x's shape for 'bernoulli' (logits) and for 'gaussian' with a
        fixed ``logvar``; twice x's last axis for 'gaussian' with ``logvar=None`` (mean,
        log variance) and for 'discretized_logistic' (mean, log scale). Learned log
        scales are clipped below at MIN_LOG_SCALE (log variances at MIN_LOGVAR).
      logvar: the fixed log variance of a 'gaussian' decoder (a scalar); None = learned.
      num_bins: 'discretized_logistic' only.
    """
    checks.check_choice("likelihood", likelihood, LIKELIHOODS)
    if likelihood == "bernoulli":
        return bernoulli_log_likelihood(x, out)
    if likelihood == "gaussian":
        if logvar is not None:
            return gaussian_log_likelihood(x, out, logvar)
        mean, lv = _split(out, jnp.shape(x), likelihood)
        return gaussian_log_likelihood(x, mean, jnp.maximum(lv, MIN_LOGVAR))
    mean, log_scale = _split(out, jnp.shape(x), likelihood)
    return discretized_logistic_log_likelihood(x, mean, jnp.maximum(log_scale, MIN_LOG_SCALE),
                                               num_bins=num_bins)


def decoder_mean(likelihood: str, out: chex.Array, *, learned_variance: bool = False
                 ) -> chex.Array:
    """E[x|z] in the likelihood's data space: sigmoid(logits) in [0, 1] for
    'bernoulli', the mean for 'gaussian' and 'discretized_logistic' (the logistic is
    symmetric; its discretized mean differs only at the clipped edge bins)."""
    checks.check_choice("likelihood", likelihood, LIKELIHOODS)
    if likelihood == "bernoulli":
        return jax.nn.sigmoid(out)
    if num_decoder_params(likelihood, learned_variance) == 2:
        return jnp.split(out, 2, axis=-1)[0]
    return out
