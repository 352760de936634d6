"""Continuous-time diffusion processes, and a registry of every process.

Each process is x_t = alpha(t) x_0 + sigma(t) z ("generalized diffusion", seed
notation a(t), b(t)), and exposes, besides ``alpha``/``sigma``:

- ``t_max`` (the noisiest time, where sampling starts), ``t_clean`` (alpha = 1,
  sigma = 0, where sampling ends), ``t_eps`` (smallest time used in training),
- ``domain()``: the (lowest, highest) t at which alpha and sigma are defined; a
  concrete t outside it is a ValueError (a traced t is not checked),
- ``prior_std``: the std of x_{t_max} for unit-variance data, so x_T can be drawn,
- ``timesteps(num_steps, spacing)``: the sampling grid,
- ``solver_time``: the variable in which ODE/SDE solvers take their steps,
  ``'t'`` (the process's own time, with d alpha/dt, d sigma/dt by autodiff) or
  ``'snr'`` (the noise-to-signal ratio sigma/alpha, with x scaled by 1/alpha:
  Karras et al. 2022, Sec. 3 -- the right choice for discrete and VE processes).

Processes are frozen, hashable dataclasses: close over them (or pass them as static
arguments) rather than tracing them.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.core import checks
from jaxgen.diffusion.schedules import DDPMProcess, ddpm_process, ratio_spacing

PROCESSES = ("ddpm", "vp", "ve", "rectified_flow", "edm")


class ContinuousProcess:
    """Shared machinery of the continuous-time processes (t is a float array).

    A subclass defines ``_alpha`` and ``_sigma`` (and ``domain`` if its range is not
    [t_clean, t_max]); the public ``alpha``, ``sigma`` and ``derivatives`` check concrete
    times against ``domain()`` first.
    """

    discrete: ClassVar[bool] = False
    solver_time: ClassVar[str] = "t"
    default_spacing: ClassVar[str] = "linspace"
    t_clean: ClassVar[float] = 0.0
    t_max: ClassVar[float] = 1.0
    t_eps: ClassVar[float] = 0.0

    def _alpha(self, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def _sigma(self, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def domain(self) -> tuple:
        """(lowest, highest) t at which ``alpha`` and ``sigma`` are defined."""
        return float(self._t_lo()), float(self.t_max)

    def _check_t(self, t, name: str = "t") -> None:
        """Rejects concrete times outside ``domain()`` (traced times are not checked).

        A relative slack of 1e-6 absorbs float32 rounding of times that are computed to
        lie on an end of the range (grids, bisection).
        """
        lo, hi = self.domain()
        checks.check_range(name, t, lo, hi, slack=1e-6 * max(1.0, abs(hi)),
                           where=f"{type(self).__name__}: ")

    def alpha(self, t):
        """Signal scale alpha(t) for t in ``domain()``, elementwise."""
        self._check_t(t)
        return self._alpha(t)

    def sigma(self, t):
        """Noise scale sigma(t) for t in ``domain()``, elementwise."""
        self._check_t(t)
        return self._sigma(t)

    @property
    def prior_std(self) -> float:
        """Std of x_{t_max} when the data have unit variance: sqrt(alpha^2 + sigma^2)."""
        with jax.ensure_compile_time_eval():
            a, s = float(self.alpha(self.t_max)), float(self.sigma(self.t_max))
        return float(np.sqrt(a * a + s * s))

    def derivatives(self, t):
        """(d alpha/dt, d sigma/dt) at t, by forward-mode autodiff."""
        self._check_t(t)
        t = jnp.asarray(t, jnp.float32)
        one = jnp.ones_like(t)
        _, da = jax.jvp(self._alpha, (t,), (one,))
        _, ds = jax.jvp(self._sigma, (t,), (one,))
        return da, ds

    def ratio(self, t):
        """Noise-to-signal ratio sigma(t) / alpha(t) (Karras et al.'s sigma)."""
        return self.sigma(t) / self.alpha(t)

    def t_from_ratio(self, ratio):
        """Inverts ``ratio`` (increasing in t) by bisection on [t_clean, t_max]; jit-able.

        40 halvings of the time range: far below float32 resolution of t."""
        self._check_ratio(ratio)
        ratio = jnp.asarray(ratio, jnp.float32)

        def halve(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            above = self.ratio(mid) > ratio
            return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

        lo, hi = jax.lax.fori_loop(0, 40, halve, (jnp.full_like(ratio, float(self._t_lo())),
                                                  jnp.full_like(ratio, float(self.t_max))))
        return 0.5 * (lo + hi)

    def _check_ratio(self, ratio) -> None:
        """Rejects concrete noise-to-signal ratios outside [0, ratio(t_max)]."""
        if checks.concrete(ratio) is None:
            return
        with jax.ensure_compile_time_eval():
            hi = float(self._sigma(self.t_max) / self._alpha(self.t_max))
        hi = np.inf if np.isnan(hi) else hi
        checks.check_range("ratio", ratio, 0.0, hi, slack=1e-6 * max(1.0, hi),
                           where=f"{type(self).__name__}: ")

    def ratio_range(self):
        """(smallest, largest) noise-to-signal ratio of the 'karras'/'logsnr' grids."""
        raise ValueError(f"{type(self).__name__} has no finite noise-to-signal ratio at "
                         f"t_max; use spacing='linspace'")

    def timesteps(self, num_steps: int, spacing: str | None = None, *, rho: float = 7.0,
                  t_start: float | None = None) -> np.ndarray:
        """The sampling grid: ``num_steps`` times from noisy to clean, then ``t_clean``.

        Spacings: ``'linspace'`` is uniform in t over [t_start, t_clean] (the lectures'
        rectified-flow loop); ``'karras'`` is Karras et al. (2022) Eq. 5 in the
        noise-to-signal ratio with exponent ``rho``; ``'logsnr'`` is uniform in its log.

        Args:
          num_steps: number of time points the model is evaluated at (>= 1).
          spacing: 'linspace', 'karras' or 'logsnr'; default ``default_spacing``.
          rho: the Karras exponent.
          t_start: start here instead of t_max (SDEdit).

        Returns:
          float32 array (num_steps + 1,), decreasing, ending with t_clean.
        """
        spacing = spacing or self.default_spacing
        n = checks.check_int("num_steps", num_steps)
        checks.check_positive("rho", rho)
        if t_start is not None and (checks.concrete(t_start) is None
                                    or np.ndim(t_start) != 0):
            raise ValueError(f"t_start must be a Python or NumPy scalar (it fixes the grid "
                             f"at trace time), got {type(t_start).__name__} of shape "
                             f"{np.shape(t_start)}")
        t0 = self.t_max if t_start is None else float(t_start)
        if not self._t_lo() < t0 <= self.t_max:
            raise ValueError(f"t_start must be in ({self._t_lo()}, {self.t_max}], got {t_start}")
        with jax.ensure_compile_time_eval():
            return self._timesteps(n, spacing, rho, t0)

    def _timesteps(self, n, spacing, rho, t0):
        if spacing == "linspace":
            ts = self._linspace(t0, n)
        elif spacing in ("karras", "logsnr"):
            r_min, r_max = self.ratio_range()
            r_max = min(r_max, float(self.ratio(t0)))
            ts = np.array(self.t_from_ratio(ratio_spacing(spacing, n, r_min, r_max, rho)),
                          np.float64)
            ts[0] = t0  # start exactly at t_start (the ratio may be capped or infinite)
        else:
            raise ValueError(f"spacing must be one of ('linspace', 'karras', 'logsnr') for "
                             f"{type(self).__name__}, got {spacing!r}")
        return np.concatenate([ts, [self.t_clean]]).astype(np.float32)

    def _t_lo(self) -> float:
        return float(self.t_clean)

    def _linspace(self, t0: float, n: int) -> np.ndarray:
        return np.linspace(t0, float(self.t_clean), n + 1)[:n]


@dataclasses.dataclass(frozen=True)
class VPProcess(ContinuousProcess):
    """Variance-preserving SDE of Song et al. (2021), Eq. 11 (the continuous DDPM):
    dx = -1/2 beta(t) x dt + sqrt(beta(t)) dW, beta(t) = beta_min + t (beta_max - beta_min),
    so alpha(t) = exp(-t^2 (beta_max - beta_min)/4 - t beta_min/2), sigma = sqrt(1 - alpha^2).
    Near t = 0, sigma ~ sqrt(beta_min t), so d sigma/dt is +inf at t = 0 itself (solvers
    never evaluate it there; training starts at ``t_eps``).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    t_eps: ClassVar[float] = 1e-5

    def _log_alpha(self, t):
        t = jnp.asarray(t, jnp.float32)
        return -0.25 * t * t * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def _alpha(self, t):
        return jnp.exp(self._log_alpha(t))

    def _sigma(self, t):
        # -expm1 keeps sigma accurate near t = 0, where 1 - alpha^2 cancels.
        return jnp.sqrt(-jnp.expm1(2.0 * self._log_alpha(t)))

    def beta(self, t):
        return self.beta_min + jnp.asarray(t, jnp.float32) * (self.beta_max - self.beta_min)

    def ratio_range(self):
        return float(self.ratio(1e-3)), float(self.ratio(self.t_max))


@dataclasses.dataclass(frozen=True)
class VEProcess(ContinuousProcess):
    """Variance-exploding SDE of Song et al. (2021), Eq. 9 (NCSN): alpha = 1,
    sigma(t) = sigma_min (sigma_max / sigma_min)^t for t in [0, 1]. The clean end is
    t = -inf (sigma = 0); solvers step in sigma itself."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    solver_time: ClassVar[str] = "snr"
    t_clean: ClassVar[float] = -np.inf

    def _alpha(self, t):
        return jnp.ones_like(jnp.asarray(t, jnp.float32))

    def _sigma(self, t):
        t = jnp.asarray(t, jnp.float32)
        return self.sigma_min * jnp.exp(t * np.log(self.sigma_max / self.sigma_min))

    def t_from_ratio(self, ratio):
        self._check_ratio(ratio)
        return jnp.log(jnp.asarray(ratio, jnp.float32) / self.sigma_min) / np.log(
            self.sigma_max / self.sigma_min)

    def ratio_range(self):
        return self.sigma_min, self.sigma_max

    def _t_lo(self) -> float:
        return 0.0

    def domain(self) -> tuple:
        """sigma(t) is defined for every t <= 1; it tends to 0 (clean data) as t -> -inf."""
        return -np.inf, float(self.t_max)

    def _linspace(self, t0, n):
        # Song et al. evaluate at N points from 1 down to 0 (sigma_min), then denoise.
        return np.linspace(t0, 0.0, n)


@dataclasses.dataclass(frozen=True)
class RectifiedFlow(ContinuousProcess):
    """Rectified flow (Liu et al. 2023; the lectures): x_t = (1 - t) x + t z, t in [0, 1],
    with velocity target dx_t/dt = z - x."""

    # Training times start just above 0: at t = 0 sigma = 0, where the 'snr' and 'edm'
    # weights are inf/inf and the 'score' target is infinite. U[0, 1) hits 0 exactly with
    # probability 2^-24 per example, which a long run eventually draws.
    t_eps: ClassVar[float] = 1e-5

    def _alpha(self, t):
        return 1.0 - jnp.asarray(t, jnp.float32)

    def ratio_range(self):
        # sigma/alpha = t/(1-t) is infinite at t = 1; the grid's first level stays t = 1.
        return 1e-3 / (1.0 - 1e-3), (1.0 - 1e-3) / 1e-3

    def _sigma(self, t):
        return jnp.asarray(t, jnp.float32)


@dataclasses.dataclass(frozen=True)
class EDMProcess(ContinuousProcess):
    """EDM's parameterization (Karras et al. 2022, Table 1): alpha = 1, sigma(t) = t,
    so t *is* the noise level, from sigma_max down to 0; default grid: Eq. 5 with rho=7
    from sigma_max to sigma_min, then 0. ``sigma_data`` is the data std used by the
    preconditioning (``targets.edm_precondition``) and the EDM loss weighting."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5

    default_spacing: ClassVar[str] = "karras"

    @property
    def t_max(self) -> float:  # type: ignore[override]
        return self.sigma_max

    @property
    def t_eps(self) -> float:  # type: ignore[override]
        return self.sigma_min

    def _alpha(self, t):
        return jnp.ones_like(jnp.asarray(t, jnp.float32))

    def _sigma(self, t):
        return jnp.asarray(t, jnp.float32)

    def t_from_ratio(self, ratio):
        self._check_ratio(ratio)
        return jnp.asarray(ratio, jnp.float32)

    def ratio_range(self):
        return self.sigma_min, self.sigma_max


def make_process(name: str, **kwargs):
    """Builds a process by name: one of PROCESSES.

    ``'ddpm'`` takes schedule, num_timesteps, beta_start, beta_end; ``'vp'`` beta_min,
    beta_max; ``'ve'`` sigma_min, sigma_max; ``'edm'`` sigma_min, sigma_max, sigma_data;
    ``'rectified_flow'`` nothing.
    """
    builders = {"ddpm": ddpm_process, "vp": VPProcess, "ve": VEProcess,
                "rectified_flow": RectifiedFlow, "edm": EDMProcess}
    if name not in builders:
        raise ValueError(f"process must be one of {PROCESSES}, got {name!r}")
    return builders[name](**kwargs)


def is_discrete(process) -> bool:
    return bool(getattr(process, "discrete", False))


__all__ = ["PROCESSES", "ContinuousProcess", "DDPMProcess", "EDMProcess", "RectifiedFlow",
           "VEProcess", "VPProcess", "is_discrete", "make_process"]
