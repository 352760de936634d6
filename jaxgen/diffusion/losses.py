"""Denoising objectives and training-time samplers. Losses are unreduced: one value per
example; the caller reduces (optax style)."""

from __future__ import annotations

from typing import Callable, Optional

import chex
import jax
import jax.numpy as jnp

from jaxgen.core import checks
from jaxgen.core.rng import per_example_keys
from jaxgen.diffusion import schedules, targets

TIME_SAMPLERS = ("uniform", "logit_normal", "log_normal")
WEIGHTINGS = ("uniform", "snr", "min_snr", "edm")


def shift_time(u, shift: float):
    """Esser et al. (2024, "Scaling Rectified Flow Transformers", Eq. 23): maps u in
    [0, 1] to shift * u / (1 + (shift - 1) u), moving mass towards noise for shift > 1
    (the lectures: "for high-res data, shift to higher noise")."""
    return shift * u / (1.0 + (shift - 1.0) * u)


def resolution_shift(num_dims: int, base_dims: int = 64 * 64) -> float:
    """The shift for data with ``num_dims`` values per channel relative to a base
    resolution: sqrt(num_dims / base_dims) (Esser et al. 2024, Sec. 5.3.2)."""
    return float((num_dims / base_dims) ** 0.5)


def time_sampler(process, kind: str = "uniform", *, mean: float = 0.0, std: float = 1.0,
                 shift: float = 1.0) -> Callable:
    """Returns ``draw(key) -> t``: one training time for one example.

    Kinds:
      'uniform': t ~ U{0..T-1} (discrete) or U[t_eps, t_max] (continuous).
      'logit_normal': u = sigmoid(mean + std n), n ~ N(0, 1) (Esser et al. 2024, Eq. 19;
        the lectures' ``t = randn().sigmoid()``), mapped onto the process's time range.
      'log_normal': log(sigma/alpha) ~ N(mean, std) (Karras et al. 2022, Table 1: mean
        -1.2, std 1.2), continuous processes only.
    ``shift`` (> 0) is applied to u in [0, 1] (``shift_time``) for 'uniform' and
    'logit_normal'.
    """
    if kind not in TIME_SAMPLERS:
        raise ValueError(f"time sampler must be one of {TIME_SAMPLERS}, got {kind!r}")
    checks.check_positive("shift", shift)
    checks.check_positive("std", std)
    discrete = bool(getattr(process, "discrete", False))
    if kind == "log_normal" and discrete:
        raise ValueError("time sampler 'log_normal' needs a continuous-time process")

    def unit(key):
        if kind == "uniform":
            u = jax.random.uniform(key, ())
        else:
            u = jax.nn.sigmoid(mean + std * jax.random.normal(key, ()))
        return shift_time(u, shift) if shift != 1.0 else u

    if discrete:
        T = process.num_timesteps
        return lambda key: jnp.minimum(jnp.floor(unit(key) * T), T - 1).astype(jnp.int32)
    if kind == "log_normal":
        return lambda key: jnp.clip(
            process.t_from_ratio(jnp.exp(mean + std * jax.random.normal(key, ()))),
            process.t_eps, process.t_max)
    lo, hi = float(max(process.t_eps, process._t_lo())), float(process.t_max)
    return lambda key: lo + (hi - lo) * unit(key)


def loss_weight(weighting: str, prediction: str, alpha, sigma, dalpha=None, dsigma=None, *,
                gamma: float = 5.0, sigma_data: float = 0.5):
    """The factor multiplying the squared error in the *target's* space so that the loss
    is lambda(t) ||x0_hat - x0||^2 with

      'uniform': plain MSE in the target's space (L_simple for eps: Ho et al. Eq. 14),
      'snr':     lambda = SNR = alpha^2/sigma^2 (the eps-MSE, whatever the target),
      'min_snr': lambda = min(SNR, gamma) (Hang et al. 2023, "Efficient Diffusion
                 Training via Min-SNR Weighting", Eq. 8),
      'edm':     lambda = (s^2 + sd^2) / (s sd)^2 with s = sigma/alpha (Karras et al.
                 2022, Eq. 8 and Table 1).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    targets._check(prediction)
    checks.check_positive("gamma", gamma)
    checks.check_positive("sigma_data", sigma_data)
    if weighting == "uniform":
        return jnp.ones_like(alpha)
    snr = jnp.square(alpha / sigma)
    if weighting == "snr":
        lam = snr
    elif weighting == "min_snr":
        lam = jnp.minimum(snr, gamma)
    else:
        s2 = jnp.square(sigma / alpha)
        lam = (s2 + sigma_data ** 2) / (s2 * sigma_data ** 2)
    return lam / jnp.square(targets.x0_scale(prediction, alpha, sigma, dalpha, dsigma))


def denoising_loss(model_fn: Callable, process, x0: chex.Array, rng: chex.PRNGKey, *,
                   prediction: str = "eps", weighting: str = "uniform",
                   t_sampler: Optional[Callable] = None, gamma: float = 5.0,
                   sigma_data: float = 0.5,
                   positions: Optional[chex.Array] = None) -> chex.Array:
    """The denoising objective for any process and target: L_simple of Ho et al. (2020),
    Eq. 14, generalised (the lectures' "generalized diffusion": x_t = a x + b z, target
    y = c x + d z, loss ||y - f(x_t, t)||^2).

    Draws t (``t_sampler``, default uniform) and z ~ N(0, I) per example, forms x_t in
    closed form and regresses ``model_fn(x_t, t)`` on the target, weighted per
    ``loss_weight``.

    Args:
      model_fn: (x_t (B, ...), t (B,)) -> prediction (B, ...).
      process: any process.
      x0: clean data, (B, ...) float.
      rng: PRNG key; example i uses fold_in(rng, i), or fold_in(rng, positions[i]).
      prediction: one of ``targets.PREDICTIONS``.
      weighting: one of WEIGHTINGS.
      t_sampler: ``draw(key) -> t`` (``time_sampler``).
      positions: (B,) places of x0's examples in a larger batch (default 0..B-1), so
        that micro-batches of a batch (gradient accumulation) draw exactly the
        randomness of the whole batch.

    Returns:
      (B,) weighted mean squared error over the non-batch dimensions.
    """
    targets._check(prediction)
    checks.check_choice("weighting", weighting, WEIGHTINGS)
    checks.check_float_array("x0", x0)
    if x0.ndim < 2:
        raise ValueError(f"x0 must be (B, ...) with a batch dimension and at least one "
                         f"feature axis, got shape {x0.shape}")
    discrete = bool(getattr(process, "discrete", False))
    if prediction == "velocity" and discrete:
        raise ValueError("prediction 'velocity' needs a continuous-time process")
    draw_t = t_sampler or time_sampler(process)
    keys = per_example_keys(rng, x0.shape[0], positions=positions)

    def draw(key):
        k_t, k_z = jax.random.split(key)
        return draw_t(k_t), jax.random.normal(k_z, x0.shape[1:], x0.dtype)

    t, noise = jax.vmap(draw)(keys)
    x_t = schedules.q_sample(process, x0, t, noise)
    alpha, sigma = process.alpha(t), process.sigma(t)
    dalpha = dsigma = None
    if not discrete:
        dalpha, dsigma = process.derivatives(t)
    pred = model_fn(x_t, t)
    if pred.shape != x0.shape:
        raise ValueError(f"model_fn returned shape {pred.shape}, expected {x0.shape}")
    e = lambda v: None if v is None else schedules._expand(v, x0)
    y = targets.target(prediction, x0, noise, e(alpha), e(sigma), e(dalpha), e(dsigma))
    mse = jnp.mean(jnp.square(pred - y), axis=tuple(range(1, x0.ndim)))
    if weighting == "uniform":
        return mse
    return loss_weight(weighting, prediction, alpha, sigma, dalpha, dsigma, gamma=gamma,
                       sigma_data=sigma_data) * mse
