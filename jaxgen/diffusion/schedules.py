"""Noise schedules and the discrete DDPM process.

Every process exposes ``alpha(t)`` and ``sigma(t)`` such that
``x_t = alpha(t) * x_0 + sigma(t) * z`` with ``z ~ N(0, I)``, for exactly the
``t`` values it hands to ``model_fn`` (seed notation: a(t), b(t)). The continuous
processes live in ``processes.py``.

The discrete DDPM process (Ho et al. 2020, "Denoising Diffusion Probabilistic
Models") indexes its steps ``t = 0 .. T-1``; index ``t`` is the paper's step
``t + 1``, so ``alpha_bars[t] = prod_{s<=t} (1 - beta_s)``. Index ``-1`` is the
clean data (alpha = 1, sigma = 0): samplers step to it last.
"""

from __future__ import annotations

from typing import ClassVar

import chex
import jax.numpy as jnp
import numpy as np

from jaxgen.core import checks

SCHEDULES = ("linear", "cosine", "sigmoid")
SPACINGS = ("leading", "trailing", "linspace", "karras", "logsnr")


def linear_beta_schedule(num_timesteps: int = 1000, beta_start: float = 1e-4,
                         beta_end: float = 0.02) -> np.ndarray:
    """Linearly spaced betas of Ho et al. (2020), Sec. 4: 1e-4 .. 0.02 over T=1000.

    Returns:
      float64 array of shape (num_timesteps,).
    """
    _check_T(num_timesteps)
    if not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(
            f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, "
            f"beta_end={beta_end}")
    return np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)


def _betas_from_alpha_bar(alpha_bar_fn, num_timesteps: int, max_beta: float) -> np.ndarray:
    """beta_t = 1 - abar(t/T) / abar((t-1)/T), clipped to max_beta (Nichol & Dhariwal 2021,
    Sec. 3.2: the clip stops the singular last step of the cosine schedule)."""
    s = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
    abar = alpha_bar_fn(s)
    return np.clip(1.0 - abar[1:] / abar[:-1], 0.0, max_beta)


def cosine_beta_schedule(num_timesteps: int = 1000, s: float = 0.008,
                         max_beta: float = 0.999) -> np.ndarray:
    """Cosine schedule of Nichol & Dhariwal (2021), Eq. 17:
    abar(t) = f(t)/f(0), f(t) = cos^2(((t/T) + s) / (1 + s) * pi/2)."""
    _check_T(num_timesteps)
    f = lambda u: np.cos((u + s) / (1.0 + s) * np.pi / 2) ** 2
    return _betas_from_alpha_bar(lambda u: f(u) / f(0.0), num_timesteps, max_beta)


def sigmoid_beta_schedule(num_timesteps: int = 1000, start: float = -3.0, end: float = 3.0,
                          tau: float = 1.0, max_beta: float = 0.999) -> np.ndarray:
    """Sigmoid schedule of Jabri et al. (2023), "Scalable Adaptive Computation for
    Iterative Generation", Alg. 1: abar(t) = (sig(end/tau) - sig((t (end-start) + start)/tau))
    / (sig(end/tau) - sig(start/tau))."""
    _check_T(num_timesteps)
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))
    v_start, v_end = sig(start / tau), sig(end / tau)
    abar = lambda u: (v_end - sig((u * (end - start) + start) / tau)) / (v_end - v_start)
    # abar(1) = 0 exactly; the clip on beta keeps the last step finite.
    return _betas_from_alpha_bar(lambda u: np.maximum(abar(u), 1e-12), num_timesteps, max_beta)


def _check_T(num_timesteps):
    checks.check_int("num_timesteps", num_timesteps)


def karras_sigmas(num_steps: int, sigma_min: float, sigma_max: float,
                  rho: float = 7.0) -> np.ndarray:
    """Noise levels of Karras et al. (2022), Eq. 5: (s_max^(1/rho) + i/(N-1) (s_min^(1/rho)
    - s_max^(1/rho)))^rho for i = 0..N-1, decreasing. Shape (num_steps,), float64.

    Needs num_steps >= 1, 0 <= sigma_min <= sigma_max and rho > 0."""
    checks.check_int("num_steps", num_steps)
    checks.check_positive("sigma_min", sigma_min, allow_zero=True)
    checks.check_range("sigma_max", sigma_max, float(sigma_min), np.inf)
    checks.check_positive("rho", rho)
    if num_steps == 1:
        return np.array([sigma_max], np.float64)
    i = np.arange(num_steps, dtype=np.float64) / (num_steps - 1)
    inv = 1.0 / rho
    return (sigma_max ** inv + i * (sigma_min ** inv - sigma_max ** inv)) ** rho


def ratio_spacing(kind: str, num_steps: int, ratio_min: float, ratio_max: float,
                  rho: float = 7.0) -> np.ndarray:
    """Decreasing noise-to-signal ratios sigma/alpha: 'karras' (``karras_sigmas``) or
    'logsnr' (uniform in log(sigma/alpha), i.e. in the half log-SNR lambda; the spacing
    Lu et al. 2022 recommend for DPM-Solver). Needs 0 < ratio_min <= ratio_max."""
    checks.check_choice("kind", kind, ("karras", "logsnr"))
    checks.check_positive("ratio_min", ratio_min)
    if kind == "karras":
        return karras_sigmas(num_steps, ratio_min, ratio_max, rho)
    return np.exp(np.linspace(np.log(ratio_max), np.log(ratio_min), num_steps))


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

    discrete: ClassVar[bool] = True
    #: Samplers integrate ODEs in sigma/alpha (the noise-to-signal ratio), Karras et al. 2022.
    solver_time: ClassVar[str] = "snr"
    default_spacing: ClassVar[str] = "linspace"

    @property
    def num_timesteps(self) -> int:
        return self.betas.shape[0]

    @property
    def alphas(self) -> chex.Array:
        return 1.0 - self.betas

    @property
    def t_clean(self) -> int:
        """The index of the clean data (alpha = 1, sigma = 0)."""
        return -1

    @property
    def t_max(self) -> int:
        return self.num_timesteps - 1

    @property
    def prior_std(self) -> float:
        """Std of x_T for unit-variance data: sqrt(abar_T + (1 - abar_T)) = 1."""
        return 1.0

    def alpha_bars_prev(self) -> chex.Array:
        """alpha_bar_{t-1}, with alpha_bar before the first step equal to 1. Shape (T,)."""
        return jnp.concatenate([jnp.ones((1,), self.alpha_bars.dtype), self.alpha_bars[:-1]])

    def one_minus_alpha_bars_prev(self) -> chex.Array:
        """1 - alpha_bar_{t-1} (0 before the first step). Shape (T,)."""
        return jnp.concatenate([jnp.zeros((1,), self.alpha_bars.dtype),
                                self.one_minus_alpha_bars[:-1]])

    def _check_t(self, t) -> None:
        """Step indices are integers in [-1, T-1]; a concrete t is range-checked (a traced
        one would otherwise be clamped silently by the gather)."""
        dtype = jnp.result_type(t)
        if not jnp.issubdtype(dtype, jnp.integer):
            raise ValueError(f"DDPMProcess: t must hold integer step indices in [-1, "
                             f"{self.num_timesteps - 1}] (-1 = clean data), got dtype {dtype}")
        checks.check_range("t", t, -1, self.num_timesteps - 1, where="DDPMProcess: ")

    def alpha(self, t: chex.Array) -> chex.Array:
        """Signal scale sqrt(alpha_bar_t) for integer t in [0, T); 1 at t = -1 (clean)."""
        self._check_t(t)
        t = jnp.asarray(t)
        return jnp.where(t < 0, 1.0, jnp.sqrt(self.alpha_bars[jnp.maximum(t, 0)]))

    def sigma(self, t: chex.Array) -> chex.Array:
        """Noise scale sqrt(1 - alpha_bar_t) for integer t in [0, T); 0 at t = -1 (clean)."""
        self._check_t(t)
        t = jnp.asarray(t)
        return jnp.where(t < 0, 0.0, jnp.sqrt(self.one_minus_alpha_bars[jnp.maximum(t, 0)]))

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

    def timesteps(self, num_steps: int, spacing: str | None = None, *, rho: float = 7.0,
                  t_start: int | None = None) -> np.ndarray:
        """The sampling grid: ``num_steps`` indices from noisy to clean, then -1 (clean).

        Spacings (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps
        are Flawed", Table 2): ``'linspace'`` rounds linspace(0, T-1, N); ``'leading'``
        takes arange(N) * (T // N); ``'trailing'`` takes round(arange(T, 0, -T/N)) - 1, so
        it always starts at the last step; ``'karras'`` and ``'logsnr'`` pick the indices
        nearest to the ratios sigma/alpha of ``ratio_spacing``.

        Args:
          num_steps: number of model evaluations' time points (1 .. T).
          spacing: one of SPACINGS; default 'linspace' (it spans both ends).
          rho: the Karras spacing exponent.
          t_start: start from this index instead of T-1 (SDEdit); the grid spans [0, t_start].

        Returns:
          int32 array (num_steps + 1,), strictly decreasing, ending with -1.
        """
        spacing = spacing or self.default_spacing
        checks.check_choice("spacing", spacing, SPACINGS)
        checks.check_positive("rho", rho)
        if t_start is not None:
            v = checks.concrete(t_start)
            if v is None or v.ndim != 0 or not np.issubdtype(v.dtype, np.integer):
                raise ValueError(f"t_start must be an integer step index in [0, "
                                 f"{self.num_timesteps - 1}] (a Python or NumPy int), got "
                                 f"{t_start!r}")
        T = self.num_timesteps if t_start is None else int(t_start) + 1
        if not 1 <= T <= self.num_timesteps:
            raise ValueError(f"t_start must be in [0, {self.num_timesteps - 1}], got {t_start}")
        n = checks.check_int("num_steps", num_steps, 1, T)
        if spacing == "linspace":
            ts = np.round(np.linspace(0, T - 1, n)).astype(np.int64)
        elif spacing == "leading":
            ts = np.arange(n) * (T // n)
        elif spacing == "trailing":
            ts = np.round(np.arange(T, 0, -T / n)).astype(np.int64)[:n] - 1
        elif spacing in ("karras", "logsnr"):
            abar = np.cumprod(1.0 - np.asarray(self.betas, np.float64))[:T]
            ratio = np.sqrt((1.0 - abar) / abar)
            want = ratio_spacing(spacing, n, ratio[0], ratio[-1], rho)
            ts = np.abs(np.log(ratio)[None, :] - np.log(want)[:, None]).argmin(axis=1)
        else:
            raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
        ts = np.unique(ts)[::-1]
        if ts.size != n:
            raise ValueError(f"spacing {spacing!r} gives only {ts.size} distinct steps for "
                             f"num_steps={n} over {T} steps; use fewer steps or 'linspace'")
        return np.concatenate([ts, [-1]]).astype(np.int32)


def ddpm_process(schedule: str = "linear", num_timesteps: int = 1000,
                 beta_start: float = 1e-4, beta_end: float = 0.02) -> DDPMProcess:
    """Builds a discrete DDPM process. The cumulative product is taken in float64.

    Args:
      schedule: 'linear' (Ho et al. 2020; uses beta_start/beta_end), 'cosine' (Nichol &
        Dhariwal 2021) or 'sigmoid' (Jabri et al. 2023).
      num_timesteps: T.
    """
    if schedule == "linear":
        betas = linear_beta_schedule(num_timesteps, beta_start, beta_end)
    elif schedule == "cosine":
        betas = cosine_beta_schedule(num_timesteps)
    elif schedule == "sigmoid":
        betas = sigmoid_beta_schedule(num_timesteps)
    else:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    alpha_bars = np.cumprod(1.0 - betas)
    return DDPMProcess(betas=jnp.asarray(betas, jnp.float32),
                       alpha_bars=jnp.asarray(alpha_bars, jnp.float32),
                       one_minus_alpha_bars=jnp.asarray(-np.expm1(np.cumsum(np.log1p(-betas))),
                                                        jnp.float32))


def _expand(v: chex.Array, x: chex.Array) -> chex.Array:
    """Reshapes per-example scalars (B,) to broadcast against x (B, ...)."""
    v = jnp.asarray(v)
    return jnp.reshape(v, v.shape + (1,) * (x.ndim - v.ndim))


def q_sample(process, x0: chex.Array, t: chex.Array, noise: chex.Array) -> chex.Array:
    """Draws x_t ~ q(x_t | x_0) in closed form: alpha(t) x_0 + sigma(t) z.

    Args:
      process: any process with ``alpha``/``sigma``.
      x0: clean data (B, ...), float.
      t: (B,) times/indices, one per example, in the process's range.
      noise: standard normal noise with the shape of x0.
    """
    checks.check_float_array("x0", x0)
    checks.check_batched("x0", x0)
    checks.check_float_array("noise", noise)
    if jnp.shape(x0) != jnp.shape(noise):
        raise ValueError(f"x0 and noise must have the same shape, got {jnp.shape(x0)} and "
                         f"{jnp.shape(noise)}")
    if jnp.shape(t) != (x0.shape[0],):
        raise ValueError(f"t must have shape ({x0.shape[0]},), one time per example, got "
                         f"{jnp.shape(t)}")
    return (_expand(process.alpha(t), x0) * x0 + _expand(process.sigma(t), x0) * noise
            ).astype(x0.dtype)

