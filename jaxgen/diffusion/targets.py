"""Prediction targets and conversions between them.

With x_t = alpha x_0 + sigma z (DESIGN.md conventions):
  'eps' predicts z, 'x0' predicts x_0, 'v' predicts alpha z - sigma x_0
  (Salimans & Ho 2022, "Progressive Distillation", Sec. 4).
"""

from __future__ import annotations

import chex

PREDICTIONS = ("eps", "x0", "v")


def _check(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def target(prediction: str, x0: chex.Array, noise: chex.Array, alpha, sigma) -> chex.Array:
    """The regression target for ``prediction`` given the clean data and the noise."""
    _check(prediction)
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    return alpha * noise - sigma * x0


def to_x0(prediction: str, pred: chex.Array, x_t: chex.Array, alpha, sigma) -> chex.Array:
    """Converts a model output to the implied x_0 estimate."""
    _check(prediction)
    if prediction == "eps":
        return (x_t - sigma * pred) / alpha
    if prediction == "x0":
        return pred
    # alpha^2 + sigma^2 = 1 is not assumed: x0 = (alpha x_t - sigma v) / (alpha^2 + sigma^2).
    return (alpha * x_t - sigma * pred) / (alpha ** 2 + sigma ** 2)


def to_eps(prediction: str, pred: chex.Array, x_t: chex.Array, alpha, sigma) -> chex.Array:
    """Converts a model output to the implied noise estimate."""
    _check(prediction)
    if prediction == "eps":
        return pred
    x0 = to_x0(prediction, pred, x_t, alpha, sigma)
    return (x_t - alpha * x0) / sigma
