"""Sampling grids and the solver frame.

A grid is t_0 > t_1 > ... > t_N = t_clean (``process.timesteps``) with, per level, the
process's alpha/sigma and their time derivatives, and the solver frame in which ODE/SDE
solvers step: for ``solver_time == 't'`` the state is x and the time t; for ``'snr'``
the state is y = x / alpha and the time u = sigma / alpha (Karras et al. 2022, Eq. 4 with
s(t) = alpha), where the probability-flow ODE reads dy/du = eps_hat.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.core import checks


class Grid(NamedTuple):
    """Per-level coefficients of a sampling grid, arrays of shape (N + 1,).

    t: model times; alpha, sigma: the process at t; dalpha, dsigma: their time
    derivatives (zeros for a discrete process); u: solver time; a, s, da, ds: the
    solver frame's scales and their u-derivatives; scale: x = scale * y.
    """
    t: chex.Array
    alpha: chex.Array
    sigma: chex.Array
    dalpha: chex.Array
    dsigma: chex.Array
    u: chex.Array
    a: chex.Array
    s: chex.Array
    da: chex.Array
    ds: chex.Array
    scale: chex.Array


def make_grid(process, num_steps: Optional[int] = None, spacing: Optional[str] = None,
              timesteps=None, t_start=None, rho: float = 7.0) -> Grid:
    """Builds the sampling grid from ``timesteps`` or from ``process.timesteps``."""
    # The grid is a constant of the program: compute it eagerly even under jit.
    with jax.ensure_compile_time_eval():
        return _make_grid(process, num_steps, spacing, timesteps, t_start, rho)


def _make_grid(process, num_steps, spacing, timesteps, t_start, rho) -> Grid:
    if timesteps is None:
        if num_steps is None:
            num_steps = getattr(process, "num_timesteps", None)
            if num_steps is None:
                raise ValueError("num_steps is required for a continuous-time process")
        timesteps = process.timesteps(num_steps, spacing, rho=rho, t_start=t_start)
    else:
        if checks.concrete(timesteps) is None:
            raise ValueError("timesteps must be concrete (a NumPy array or list): the grid "
                             "is fixed when the sampler is traced")
    ts = np.asarray(timesteps)
    if ts.ndim != 1 or ts.size < 2:
        raise ValueError(f"timesteps must be 1-D with >= 2 entries (levels then t_clean), "
                         f"got shape {ts.shape}")
    discrete = bool(getattr(process, "discrete", False))
    if discrete and not np.issubdtype(ts.dtype, np.integer):
        raise ValueError(f"timesteps of a discrete process must be integer step indices "
                         f"(ending with -1, clean), got dtype {ts.dtype}")
    if not np.all(np.diff(ts.astype(np.float64)) < 0):
        raise ValueError(f"timesteps must decrease strictly from noisy to clean, got "
                         f"{ts.tolist()}")
    t = jnp.asarray(ts, jnp.int32 if discrete else jnp.float32)
    alpha = jnp.asarray(process.alpha(t), jnp.float32)
    sigma = jnp.asarray(process.sigma(t), jnp.float32)
    if discrete:
        dalpha = dsigma = jnp.zeros_like(alpha)
    else:
        finite = jnp.where(jnp.isfinite(t), t, 0.0)
        dalpha, dsigma = process.derivatives(finite)
        dalpha = jnp.where(jnp.isfinite(t), dalpha, 0.0)
        dsigma = jnp.where(jnp.isfinite(t), dsigma, 0.0)
    if process.solver_time == "snr":
        u = sigma / alpha
        one = jnp.ones_like(u)
        return Grid(t, alpha, sigma, dalpha, dsigma, u, one, u, 0.0 * one, one, alpha)
    return Grid(t, alpha, sigma, dalpha, dsigma, t.astype(jnp.float32), alpha, sigma,
                dalpha, dsigma, jnp.ones_like(alpha))
