"""Noise schedules and diffusion processes.

Every process exposes ``alpha(t)`` and ``sigma(t)`` such that
``x_t = alpha(t) * x_0 + sigma(t) * z`` with ``z ~ N(0, I)``, for exactly the
``t`` values it hands to ``model_fn`` (seed notation: a(t), b(t)).

The discrete DDPM process (Ho et al. 2020, "Denoising Diffusion Probabilistic
Models") indexes its steps ``t = 0 .. T-1``; index ``t`` is the paper's step
``t + 1``, so ``alpha_bars[t] = prod_{s<=t} (1 - beta_s)``.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np

SCHEDULES = ("linear",)


def linear_beta_schedule(num_timesteps: int = 1000, beta_start: float = 1e-4,
                         beta_end: float = 0.02) -> np.ndarray:
    """Linearly spaced betas of Ho et al. (2020), Sec. 4: 1e-4 .. 0.02 over T=1000.

    Returns:
      float64 array of shape (num_timesteps,).
    """
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    if not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(
            f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, "
            f"beta_end={beta_end}")
    return np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)


@chex.dataclass(frozen=True)
class DDPMProcess:
    """Discrete variance-preserving process q(x_t | x_{t-1}) = N(sqrt(1-beta_t) x_{t-1}, beta_t I).

    Attributes:
      betas: (T,) per-step variances beta_t.
      alpha_bars: (T,) cumulative products prod_{s<=t}(1 - beta_s), computed in float64.
      one_minus_alpha_bars: (T,) 1 - alpha_bars, computed in float64 before the cast
        (in float32 the subtraction loses ~4 digits at small t).
    """

    betas: chex.Array
    alpha_bars: chex.Array
    one_minus_alpha_bars: chex.Array

    @property
    def num_timesteps(self) -> int:
        return self.betas.shape[0]

    @property
    def alphas(self) -> chex.Array:
        return 1.0 - self.betas

    def alpha_bars_prev(self) -> chex.Array:
        """alpha_bar_{t-1}, with alpha_bar before the first step equal to 1. Shape (T,)."""
        return jnp.concatenate([jnp.ones((1,), self.alpha_bars.dtype), self.alpha_bars[:-1]])

    def one_minus_alpha_bars_prev(self) -> chex.Array:
        """1 - alpha_bar_{t-1} (0 before the first step). Shape (T,)."""
        return jnp.concatenate([jnp.zeros((1,), self.alpha_bars.dtype),
                                self.one_minus_alpha_bars[:-1]])

    def alpha(self, t: chex.Array) -> chex.Array:
        """Signal scale sqrt(alpha_bar_t) for integer t in [0, T)."""
        return jnp.sqrt(self.alpha_bars[t])

    def sigma(self, t: chex.Array) -> chex.Array:
        """Noise scale sqrt(1 - alpha_bar_t) for integer t in [0, T)."""
        return jnp.sqrt(self.one_minus_alpha_bars[t])

    def posterior_variance(self, kind: str = "beta_tilde") -> chex.Array:
        """Variance of the reverse step, shape (T,).

        ``'beta'``: sigma_t^2 = beta_t (upper bound choice in Ho et al. Sec. 3.2);
        ``'beta_tilde'``: the true posterior variance of q(x_{t-1} | x_t, x_0),
        (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t.
        """
        if kind == "beta":
            return self.betas
        if kind == "beta_tilde":
            return self.one_minus_alpha_bars_prev() / self.one_minus_alpha_bars * self.betas
        raise ValueError(f"variance kind must be 'beta' or 'beta_tilde', got {kind!r}")


def ddpm_process(schedule: str = "linear", num_timesteps: int = 1000,
                 beta_start: float = 1e-4, beta_end: float = 0.02) -> DDPMProcess:
    """Builds a discrete DDPM process. The cumulative product is taken in float64."""
    if schedule == "linear":
        betas = linear_beta_schedule(num_timesteps, beta_start, beta_end)
    else:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    alpha_bars = np.cumprod(1.0 - betas)
    return DDPMProcess(betas=jnp.asarray(betas, jnp.float32),
                       alpha_bars=jnp.asarray(alpha_bars, jnp.float32),
                       one_minus_alpha_bars=jnp.asarray(1.0 - alpha_bars, jnp.float32))


def _expand(v: chex.Array, x: chex.Array) -> chex.Array:
    """Reshapes per-example scalars (B,) to broadcast against x (B, ...)."""
    return jnp.reshape(v, v.shape + (1,) * (x.ndim - v.ndim))


def q_sample(process, x0: chex.Array, t: chex.Array, noise: chex.Array) -> chex.Array:
    """Draws x_t ~ q(x_t | x_0) in closed form: alpha(t) x_0 + sigma(t) z.

    Args:
      process: any process with ``alpha``/``sigma``.
      x0: clean data (B, ...).
      t: (B,) times/indices, one per example.
      noise: standard normal noise with the shape of x0.
    """
    if x0.shape != noise.shape:
        raise ValueError(f"x0 and noise must have the same shape, got {x0.shape} and {noise.shape}")
    if t.ndim != 1 or t.shape[0] != x0.shape[0]:
        raise ValueError(f"t must have shape ({x0.shape[0]},), got {t.shape}")
    return _expand(process.alpha(t), x0) * x0 + _expand(process.sigma(t), x0) * noise
