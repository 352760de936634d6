"""Prediction targets, conversions between them, and EDM preconditioning.

With x_t = alpha x_0 + sigma z (DESIGN.md conventions) a model may predict
  'eps'      z,
  'x0'       x_0,
  'v'        alpha z - sigma x_0 (Salimans & Ho 2022, "Progressive Distillation", Sec. 4),
  'velocity' dx_t/dt = alpha' x_0 + sigma' z (z - x_0 for rectified flow; Liu et al. 2023),
  'score'    grad_x log p_t(x_t) = -E[z | x_t] / sigma (Song et al. 2021).
Each is affine in (x_0, z) given x_t, so every target converts to every other through
the canonical pair (x_0, eps). The lectures write generalized diffusion as a target
y = c(t) x + d(t) z; the table of (c, d) is ``coefficients``.
"""

from __future__ import annotations

from typing import Callable

import chex
import jax.numpy as jnp

from jaxgen.core import checks

PREDICTIONS = ("eps", "x0", "v", "velocity", "score")


def _check(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def _check_coefficients(x_name, x, alpha, sigma, dalpha, dsigma) -> None:
    """alpha, sigma (and the derivatives) must be scalars or have the rank of x."""
    for name, c in (("alpha", alpha), ("sigma", sigma), ("dalpha", dalpha),
                    ("dsigma", dsigma)):
        checks.check_coefficient(name, c, x_name, x)


def _need_derivatives(prediction, dalpha, dsigma):
    if prediction == "velocity" and (dalpha is None or dsigma is None):
        raise ValueError("prediction 'velocity' is dx_t/dt and needs a continuous-time process "
                         "(d alpha/dt, d sigma/dt); a discrete DDPM process has none")


def coefficients(prediction: str, alpha, sigma, dalpha=None, dsigma=None):
    """(c, d) with target = c x_0 + d z: the lectures' generalized-diffusion table."""
    _check(prediction)
    _need_derivatives(prediction, dalpha, dsigma)
    if prediction == "eps":
        return 0.0 * alpha, 1.0 + 0.0 * alpha
    if prediction == "x0":
        return 1.0 + 0.0 * alpha, 0.0 * alpha
    if prediction == "v":
        return -sigma, alpha
    if prediction == "velocity":
        return dalpha, dsigma
    return 0.0 * alpha, -1.0 / sigma


def target(prediction: str, x0: chex.Array, noise: chex.Array, alpha, sigma, dalpha=None,
           dsigma=None) -> chex.Array:
    """The regression target for ``prediction`` given the clean data and the noise.

    Args:
      x0, noise: arrays of the same shape.
      alpha, sigma, dalpha, dsigma: scalars, or arrays of the rank of x0 (e.g. (B, 1, ...)).
    """
    checks.check_same_shape("noise", noise, "x0", x0)
    _check_coefficients("x0", x0, alpha, sigma, dalpha, dsigma)
    c, d = coefficients(prediction, alpha, sigma, dalpha, dsigma)
    return c * x0 + d * noise


def to_x0_eps(prediction: str, pred: chex.Array, x_t: chex.Array, alpha, sigma, dalpha=None,
              dsigma=None):
    """Converts a model output to the implied (x_0, eps) estimates.

    Args:
      prediction: what ``pred`` is (one of PREDICTIONS).
      pred, x_t: arrays of the same shape.
      alpha, sigma: the process at the model's t: scalars, or arrays of the rank of x_t
        that broadcast against it (e.g. (B, 1, ...)).
      dalpha, dsigma: time derivatives, needed for 'velocity' only.
    """
    _check(prediction)
    _need_derivatives(prediction, dalpha, dsigma)
    checks.check_same_shape("pred", pred, "x_t", x_t)
    _check_coefficients("x_t", x_t, alpha, sigma, dalpha, dsigma)
    if prediction == "eps":
        return (x_t - sigma * pred) / alpha, pred
    if prediction == "x0":
        return pred, (x_t - alpha * pred) / sigma
    if prediction == "v":
        # alpha^2 + sigma^2 = 1 is not assumed (VE, EDM and rectified flow break it).
        norm = alpha * alpha + sigma * sigma
        return (alpha * x_t - sigma * pred) / norm, (sigma * x_t + alpha * pred) / norm
    if prediction == "velocity":
        # Solve [alpha sigma; alpha' sigma'] [x0; eps] = [x_t; u].
        det = alpha * dsigma - sigma * dalpha
        return (dsigma * x_t - sigma * pred) / det, (alpha * pred - dalpha * x_t) / det
    eps = -sigma * pred
    return (x_t - sigma * eps) / alpha, eps


def convert(pred: chex.Array, source: str, dest: str, x_t: chex.Array, alpha, sigma,
            dalpha=None, dsigma=None) -> chex.Array:
    """Converts a ``source`` prediction into the ``dest`` one at the same (x_t, t)."""
    _check(dest)
    if source == dest:
        _check(source)
        checks.check_same_shape("pred", pred, "x_t", x_t)
        return pred
    x0, eps = to_x0_eps(source, pred, x_t, alpha, sigma, dalpha, dsigma)
    return target(dest, x0, eps, alpha, sigma, dalpha, dsigma)


def to_x0(prediction: str, pred: chex.Array, x_t: chex.Array, alpha, sigma, dalpha=None,
          dsigma=None) -> chex.Array:
    """Converts a model output to the implied x_0 estimate."""
    return to_x0_eps(prediction, pred, x_t, alpha, sigma, dalpha, dsigma)[0]


def to_eps(prediction: str, pred: chex.Array, x_t: chex.Array, alpha, sigma, dalpha=None,
           dsigma=None) -> chex.Array:
    """Converts a model output to the implied noise estimate."""
    return to_x0_eps(prediction, pred, x_t, alpha, sigma, dalpha, dsigma)[1]


def x0_scale(prediction: str, alpha, sigma, dalpha=None, dsigma=None):
    """|d target / d x_0| at fixed x_t: an error e in x_0 is an error scale * e in the
    target. Used to express any loss weighting as a weight on the x_0 error."""
    _check(prediction)
    _need_derivatives(prediction, dalpha, dsigma)
    if prediction == "eps":
        return alpha / sigma
    if prediction == "x0":
        return 1.0 + 0.0 * alpha
    if prediction == "v":
        return (alpha * alpha + sigma * sigma) / sigma
    if prediction == "velocity":
        return jnp.abs(dalpha - dsigma * alpha / sigma)
    return alpha / (sigma * sigma)


def edm_precondition(backbone: Callable, process, sigma_data: float = 0.5) -> Callable:
    """Wraps a raw network F as EDM's denoiser D (Karras et al. 2022, Eq. 7, Table 1):
    D(x; s) = c_skip(s) x + c_out(s) F(c_in(s) x, c_noise(s)), with s = sigma/alpha the
    noise-to-signal ratio and x scaled by 1/alpha, so it works for any process.

    c_skip = sd^2/(s^2 + sd^2), c_out = s sd / sqrt(s^2 + sd^2), c_in = 1/sqrt(s^2 + sd^2),
    c_noise = log(s)/4.

    Args:
      backbone: F(x (B, ...), c_noise (B,)) -> array like x. Extra arguments (labels)
        are passed through.
      process: gives alpha(t), sigma(t).
      sigma_data: the data std.

    Returns:
      model_fn(x_t, t, *args) predicting 'x0'.
    """
    sd2 = sigma_data * sigma_data

    def model_fn(x_t, t, *args, **kwargs):
        a = process.alpha(t)
        s = process.sigma(t) / a
        shape = s.shape + (1,) * (x_t.ndim - s.ndim)
        a_, s_ = a.reshape(shape), s.reshape(shape)
        x = x_t / a_
        c_skip = sd2 / (s_ * s_ + sd2)
        c_out = s_ * sigma_data / jnp.sqrt(s_ * s_ + sd2)
        c_in = 1.0 / jnp.sqrt(s_ * s_ + sd2)
        f = backbone((c_in * x).astype(x_t.dtype), 0.25 * jnp.log(s), *args, **kwargs)
        return (c_skip * x + c_out * f).astype(x_t.dtype)

    return model_fn
