"""Samplers for every process, each compiled as a single ``lax.scan``.

A sampler takes ``model_fn(x_t, t) -> prediction``; any callable works (a Flax
``apply`` closure, an Equinox module, an exact analytic denoiser in a test). Every
sampler walks a grid t_0 > t_1 > ... > t_N = t_clean (``process.timesteps``): the
model is evaluated at t_0..t_{N-1} and the result is the state at t_clean.

ODE/SDE solvers step in the process's ``solver_time``: for ``'t'`` processes (VP,
rectified flow, EDM) the state is x and the time is t; for ``'snr'`` processes
(discrete DDPM, VE) the state is y = x / alpha and the time is u = sigma / alpha, in
which the probability-flow ODE is dy/du = eps_hat (Karras et al. 2022, Eq. 4 with
s(t) = alpha). In both frames the ODE reads dy/du = a'(u) x0_hat + s'(u) eps_hat,
with (a, s) the frame's signal and noise scales.

Randomness: example i at step k uses fold_in(fold_in(rng, i), k), so a sample does
not depend on the batch size or on how the batch is split across devices.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.core import checks
from jaxgen.core.rng import initial_noise, per_example_keys
from jaxgen.diffusion import targets
from jaxgen.diffusion.grids import Grid, make_grid

METHODS = ("ddpm", "ddim", "euler", "heun", "euler_maruyama", "pc", "dpm_solver++")
STOCHASTIC = ("ddpm", "euler_maruyama", "pc")
#: DPM-Solver++(2M) takes a second-order step only if h_{i-1} / h_i >= this (see
#: ``dpm_solver_pp_sample``): a step may at most double the previous one.
DPM_SOLVER_MIN_STEP_RATIO = 0.5


def prior_noise(process, rng: chex.PRNGKey, shape, dtype=jnp.float32) -> chex.Array:
    """x_T drawn from the process's prior: ``process.prior_std`` * N(0, I)."""
    return (process.prior_std * initial_noise(rng, shape, dtype)).astype(dtype)


def _per_example_normal(keys, k, shape, dtype):
    return jax.vmap(lambda key: jax.random.normal(jax.random.fold_in(key, k), shape, dtype))(keys)


class _Ctx(NamedTuple):
    """What every step function needs: the grid, the denoiser, the noise keys."""
    grid: Grid
    denoise: Callable
    keys: chex.Array
    shape: tuple
    dtype: object


def _denoiser(model_fn, grid: Grid, prediction: str, clip_x0, discrete: bool):
    """(y, i) -> (x0_hat, eps_hat) at level i, from the model's native prediction."""
    if prediction == "velocity" and discrete:
        raise ValueError("prediction 'velocity' needs a continuous-time process")

    def denoise(y, i):
        g = jax.tree.map(lambda v: v[i], grid)
        x = g.scale * y
        pred = model_fn(x, jnp.full((y.shape[0],), g.t, grid.t.dtype))
        if pred.shape != y.shape:
            raise ValueError(f"model_fn returned shape {pred.shape}, expected {y.shape}")
        x0, eps = targets.to_x0_eps(prediction, pred, x, g.alpha, g.sigma, g.dalpha, g.dsigma)
        if clip_x0 is not None:
            x0 = jnp.clip(x0, -clip_x0, clip_x0)
            eps = (x - g.alpha * x0) / g.sigma
        return x0.astype(y.dtype), eps.astype(y.dtype)

    return denoise


def _run(step_fn, model_fn, process, x_T, rng, *, prediction, num_steps, spacing, timesteps,
         t_start, clip_x0, return_trajectory, inpaint, init_carry=None, rho=7.0):
    """Shared driver: builds the grid, scans ``step_fn`` over levels 0..N-1, maps back to x.

    ``step_fn(ctx, y, carry, i) -> (y_next, carry)``; ``inpaint`` = (x_known, mask)
    replaces the known pixels after every step with the known image noised to the
    new level (Song et al. 2021, App. I.2).
    """
    targets._check(prediction)
    checks.check_float_array("x_T", x_T)
    if x_T.ndim < 2:
        raise ValueError(f"x_T must be (B, ...) with a batch dimension and at least one "
                         f"feature axis, got shape {x_T.shape}")
    if clip_x0 is not None:
        checks.check_positive("clip_x0", clip_x0)
    grid = make_grid(process, num_steps, spacing, timesteps, t_start, rho)
    n = grid.t.shape[0] - 1
    discrete = bool(getattr(process, "discrete", False))
    # Deterministic methods accept rng=None; a fixed key keeps the program identical.
    rng = jax.random.key(0) if rng is None else rng
    keys = per_example_keys(rng, x_T.shape[0])
    ctx = _Ctx(grid, _denoiser(model_fn, grid, prediction, clip_x0, discrete), keys,
               x_T.shape[1:], x_T.dtype)
    if inpaint is not None:
        x_known, mask = inpaint
        checks.check_float_array("inpaint image x_known", x_known)
        if jnp.shape(x_known) != x_T.shape:
            raise ValueError(f"inpaint image x_known must have the shape of x_T {x_T.shape}, "
                             f"got {jnp.shape(x_known)}")
        try:
            np.broadcast_shapes(jnp.shape(mask), x_T.shape)
        except ValueError:
            raise ValueError(f"inpaint mask of shape {jnp.shape(mask)} does not broadcast to "
                             f"the image shape {x_T.shape}; give (B, ...) or a trailing "
                             f"part of it, e.g. {x_T.shape[1:]}") from None
        checks.check_range("inpaint mask", mask, 0.0, 1.0)
        mask = jnp.broadcast_to(mask, x_T.shape).astype(x_T.dtype)
        known_keys = per_example_keys(jax.random.fold_in(rng, 0x1A1A), x_T.shape[0])

    def body(state, i):
        y, carry = state
        y, carry = step_fn(ctx, y, carry, i)
        x = grid.scale[i + 1] * y
        if inpaint is not None:
            z = _per_example_normal(known_keys, i, ctx.shape, ctx.dtype)
            known = grid.alpha[i + 1] * x_known + grid.sigma[i + 1] * z
            x = mask * known + (1.0 - mask) * x
            y = x / grid.scale[i + 1]
        y = y.astype(x_T.dtype)
        return (y, carry), (x.astype(x_T.dtype) if return_trajectory else None)

    y0 = (x_T / grid.scale[0]).astype(x_T.dtype)
    (y, _), traj = jax.lax.scan(body, (y0, init_carry), jnp.arange(n))
    x = (grid.scale[n] * y).astype(x_T.dtype)
    return (x, traj) if return_trajectory else x


def _common(fn):
    """Documents and forwards the shared keyword arguments of every sampler."""
    fn.__doc__ = (fn.__doc__ or "") + _COMMON_DOC
    return fn


_COMMON_DOC = """
    Common arguments:
      model_fn: (x_t (B, ...), t (B,)) -> prediction (B, ...).
      process: any process (``processes.make_process``).
      x_T: (B, ...) start, e.g. ``prior_noise`` (or a noised image for SDEdit).
      rng: PRNG key (unused by deterministic methods).
      prediction: what model_fn predicts, one of ``targets.PREDICTIONS``.
      num_steps: number of grid levels (default: all T steps of a discrete process).
      spacing: grid spacing (``process.timesteps``); timesteps: an explicit grid instead.
      t_start: start the grid here instead of t_max (SDEdit).
      clip_x0: clip the x_0 estimate to [-clip_x0, clip_x0] (images in [-1, 1]: 1.0).
      return_trajectory: also return x after every step, shape (N, B, ...).
      inpaint: (x_known, mask) with mask 1 where x_known is kept.

    Returns:
      x_0 (B, ...), or (x_0, trajectory).
"""


def _ancestral(ctx: _Ctx, y, i, x0, eps, variance: str, eta: float, noise_k,
               eps_form: bool = False):
    """One step from level i to i+1 through the Gaussian posterior q(x_t | x_s, x_0_hat)
    of the forward process, in x space (s = level i, noisier; t = level i+1).

    The forward jump x_s = (alpha_s/alpha_t) x_t +
    sigma_{s|t} z has sigma_{s|t}^2 = sigma_s^2 - (alpha_s/alpha_t)^2 sigma_t^2
    (Kingma et al. 2021, "Variational Diffusion Models", Eq. 3-4); the posterior has
    variance sigma_t^2 sigma_{s|t}^2 / sigma_s^2 (beta-tilde) and mean
    (alpha_s/alpha_t) sigma_t^2/sigma_s^2 x_s + alpha_t sigma_{s|t}^2/sigma_s^2 x_0.
    ``eps_form`` computes the same mean from eps_hat as in Algorithm 2 (exact when the
    model predicts eps and nothing is clipped).
    """
    g = ctx.grid
    a_s, s_s, a_t, s_t = g.alpha[i], g.sigma[i], g.alpha[i + 1], g.sigma[i + 1]
    x = g.scale[i] * y
    ratio = a_s / a_t
    jump_var = s_s * s_s - ratio * ratio * s_t * s_t
    post_var = s_t * s_t * jump_var / (s_s * s_s)
    if variance == "ddim":
        var = eta * eta * post_var
        mean = a_t * x0 + jnp.sqrt(jnp.maximum(s_t * s_t - var, 0.0)) * eps
    else:
        if eps_form:
            mean = ddpm_algorithm2_mean(x, eps, a_s, s_s, a_t, s_t)
        else:
            mean = ratio * s_t * s_t / (s_s * s_s) * x + a_t * jump_var / (s_s * s_s) * x0
        var = jump_var if variance == "beta" else post_var
    var = jnp.where(s_t > 0, var, 0.0)
    z = _per_example_normal(ctx.keys, noise_k, ctx.shape, ctx.dtype)
    return (mean + jnp.sqrt(var) * z) / g.scale[i + 1]


def ddpm_algorithm2_mean(x, eps, a_s, s_s, a_t, s_t):
    """Ho et al. (2020) Algorithm 2's mean (x_t - beta/sqrt(1 - abar) eps)/sqrt(alpha),
    generalised to a jump between any two levels of a variance-preserving process:
    beta -> sigma_{s|t}^2 and sqrt(alpha) -> alpha_s / alpha_t."""
    ratio = a_s / a_t
    jump_var = s_s * s_s - ratio * ratio * s_t * s_t
    return (x - jump_var / s_s * eps) / ratio


@_common
def ddpm_sample(model_fn: Callable, process, x_T: chex.Array, rng: chex.PRNGKey, *,
                prediction: str = "eps", variance: str = "beta", num_steps=None,
                spacing=None, timesteps=None, t_start=None, clip_x0: Optional[float] = None,
                return_trajectory: bool = False, inpaint=None):
    """Ancestral sampling, Ho et al. (2020) Algorithm 2.

    Each step draws x_{t-1} ~ N(mu~(x_t, x0_hat), sigma_t^2 I) where mu~ is the
    posterior mean (Ho et al. Eq. 7) and sigma_t^2 = beta_t (``variance='beta'``) or
    beta-tilde_t (``'beta_tilde'``); no noise at the last step. With fewer steps than T,
    beta_t is the variance of the jump between grid levels (Nichol & Dhariwal 2021,
    Sec. 4). Works for any process through the general Gaussian posterior.
    """
    if variance not in ("beta", "beta_tilde"):
        raise ValueError(f"variance must be 'beta' or 'beta_tilde', got {variance!r}")

    eps_form = prediction == "eps" and clip_x0 is None

    def step(ctx, y, carry, i):
        x0, eps = ctx.denoise(y, i)
        return _ancestral(ctx, y, i, x0, eps, variance, 0.0, i, eps_form), carry

    return _run(step, model_fn, process, x_T, rng, prediction=prediction,
                num_steps=num_steps, spacing=spacing, timesteps=timesteps, t_start=t_start,
                clip_x0=clip_x0, return_trajectory=return_trajectory, inpaint=inpaint)


@_common
def ddim_sample(model_fn: Callable, process, x_T: chex.Array, rng: chex.PRNGKey, *,
                prediction: str = "eps", eta: float = 0.0, num_steps=None, spacing=None,
                timesteps=None, t_start=None, clip_x0: Optional[float] = None,
                return_trajectory: bool = False, inpaint=None):
    """DDIM, Song, Meng & Ermon (2021), Eq. 12:
    x_t = alpha_t x0_hat + sqrt(sigma_t^2 - c^2) eps_hat + c z, with
    c^2 = eta^2 * (posterior variance); eta = 0 is deterministic, eta = 1 is DDPM with
    beta-tilde variance. Any number of steps and any spacing (``process.timesteps``).
    """
    checks.check_range("eta", eta, 0.0, 1.0)

    def step(ctx, y, carry, i):
        x0, eps = ctx.denoise(y, i)
        return _ancestral(ctx, y, i, x0, eps, "ddim", eta, i), carry

    return _run(step, model_fn, process, x_T, rng, prediction=prediction,
                num_steps=num_steps, spacing=spacing, timesteps=timesteps, t_start=t_start,
                clip_x0=clip_x0, return_trajectory=return_trajectory, inpaint=inpaint)


def _ode_slope(ctx, i, x0, eps):
    g = ctx.grid
    return g.da[i] * x0 + g.ds[i] * eps


@_common
def euler_sample(model_fn: Callable, process, x_T: chex.Array, rng=None, *,
                 prediction: str = "eps", num_steps=None, spacing=None, timesteps=None,
                 t_start=None, clip_x0: Optional[float] = None,
                 return_trajectory: bool = False, inpaint=None):
    """Euler's method on the probability-flow ODE (Song et al. 2021, Eq. 13):
    y_{i+1} = y_i + (u_{i+1} - u_i) (a' x0_hat + s' eps_hat). For rectified flow
    (u = t, a' = -1, s' = 1) with the 'linspace' grid this is the lectures' loop
    x = x - v / T; for 'snr' processes it coincides with deterministic DDIM.
    """
    def step(ctx, y, carry, i):
        x0, eps = ctx.denoise(y, i)
        du = ctx.grid.u[i + 1] - ctx.grid.u[i]
        return y + du * _ode_slope(ctx, i, x0, eps), carry

    return _run(step, model_fn, process, x_T, rng, prediction=prediction,
                num_steps=num_steps, spacing=spacing, timesteps=timesteps, t_start=t_start,
                clip_x0=clip_x0, return_trajectory=return_trajectory, inpaint=inpaint)


@_common
def heun_sample(model_fn: Callable, process, x_T: chex.Array, rng=None, *,
                prediction: str = "eps", num_steps=None, spacing=None, timesteps=None,
                t_start=None, clip_x0: Optional[float] = None,
                return_trajectory: bool = False, inpaint=None):
    """Heun's 2nd-order method, Karras et al. (2022) Algorithm 1 (deterministic): an
    Euler step, then the trapezoid of the slopes at both ends; the last step (to
    sigma = 0) is plain Euler. N levels cost 2N - 1 evaluations (18 levels: 35).
    """
    def step(ctx, y, carry, i):
        g = ctx.grid
        x0, eps = ctx.denoise(y, i)
        du = g.u[i + 1] - g.u[i]
        d = _ode_slope(ctx, i, x0, eps)
        y_euler = y + du * d

        def corrected(_):
            x0n, epsn = ctx.denoise(y_euler, i + 1)
            return y + du * 0.5 * (d + _ode_slope(ctx, i + 1, x0n, epsn))

        y_next = jax.lax.cond(g.s[i + 1] > 0, corrected, lambda _: y_euler, None)
        return y_next, carry

    return _run(step, model_fn, process, x_T, rng, prediction=prediction,
                num_steps=num_steps, spacing=spacing, timesteps=timesteps, t_start=t_start,
                clip_x0=clip_x0, return_trajectory=return_trajectory, inpaint=inpaint)


def _reverse_sde_step(ctx, y, i, x0, eps, noise_k):
    """Euler-Maruyama on the reverse SDE dy = [f y - g^2 score] du + g dW (Song et al.
    2021, Eq. 6), with f = a'/a, g^2 = d(s^2)/du - 2 f s^2 and score = -eps/s. The
    drift is written as a' x0 + (2 s' - a' s / a) eps; no noise on the final step."""
    g = ctx.grid
    du = g.u[i + 1] - g.u[i]
    f = g.da[i] / g.a[i]
    g2 = 2.0 * g.s[i] * g.ds[i] - 2.0 * f * g.s[i] * g.s[i]
    drift = g.da[i] * x0 + (2.0 * g.ds[i] - f * g.s[i]) * eps
    z = _per_example_normal(ctx.keys, noise_k, ctx.shape, ctx.dtype)
    noise = jnp.where(g.s[i + 1] > 0, jnp.sqrt(jnp.maximum(g2, 0.0) * jnp.abs(du)), 0.0)
    return y + du * drift + noise * z


def _check_sde(process):
    with jax.ensure_compile_time_eval():
        a_max = float(process.alpha(process.t_max))
    if a_max <= 0.0:
        raise ValueError(f"{type(process).__name__} has alpha(t_max) = 0, where the reverse "
                         "SDE's drift is singular; use an ODE sampler ('euler', 'heun', "
                         "'dpm_solver++') or 'ddim'")


@_common
def euler_maruyama_sample(model_fn: Callable, process, x_T: chex.Array, rng: chex.PRNGKey, *,
                          prediction: str = "eps", num_steps=None, spacing=None,
                          timesteps=None, t_start=None, clip_x0: Optional[float] = None,
                          return_trajectory: bool = False, inpaint=None):
    """Euler-Maruyama on the reverse-time SDE (Song et al. 2021, Eq. 6), for VP and VE
    (and any process with alpha(t_max) > 0)."""
    _check_sde(process)

    def step(ctx, y, carry, i):
        x0, eps = ctx.denoise(y, i)
        return _reverse_sde_step(ctx, y, i, x0, eps, i), carry

    return _run(step, model_fn, process, x_T, rng, prediction=prediction,
                num_steps=num_steps, spacing=spacing, timesteps=timesteps, t_start=t_start,
                clip_x0=clip_x0, return_trajectory=return_trajectory, inpaint=inpaint)


@_common
def pc_sample(model_fn: Callable, process, x_T: chex.Array, rng: chex.PRNGKey, *,
              prediction: str = "eps", snr: float = 0.16, corrector_steps: int = 1,
              num_steps=None, spacing=None, timesteps=None, t_start=None,
              clip_x0: Optional[float] = None, return_trajectory: bool = False, inpaint=None):
    """Predictor-corrector sampling, Song et al. (2021) Algorithms 2-3: an
    Euler-Maruyama predictor, then ``corrector_steps`` Langevin steps at the new level
    with step size 2 (snr s)^2, s the frame's noise scale: the expected value of Song
    et al.'s 2 (snr ||z|| / ||score||)^2, so a sample does not depend on its batch.
    Costs (1 + corrector_steps) evaluations per level (none for the corrector at
    sigma = 0).
    """
    _check_sde(process)
    checks.check_int("corrector_steps", corrector_steps, minimum=0)
    checks.check_positive("snr", snr)

    def step(ctx, y, carry, i):
        x0, eps = ctx.denoise(y, i)
        y = _reverse_sde_step(ctx, y, i, x0, eps, i * (corrector_steps + 1))
        s_next = ctx.grid.s[i + 1]

        def langevin(j, y):
            _, eps_c = ctx.denoise(y, i + 1)
            score = -eps_c / s_next
            z = _per_example_normal(ctx.keys, i * (corrector_steps + 1) + 1 + j, ctx.shape,
                                    ctx.dtype)
            # Song et al. set eps = 2 (r ||z|| / ||score||)^2 with norms averaged over the
            # batch; per-example norms would make the step heavy-tailed in low dimensions
            # (||score|| -> 0 at a mode), and batch averages make a sample depend on its
            # batch. E||score||^2 ~= D / s^2 and E||z||^2 = D, so use the expectation.
            step_size = 2.0 * jnp.square(snr * s_next)
            return y + step_size * score + jnp.sqrt(2.0 * step_size) * z

        y = jax.lax.cond(s_next > 0,
                         lambda y: jax.lax.fori_loop(0, corrector_steps, langevin, y),
                         lambda y: y, y)
        return y, carry

    return _run(step, model_fn, process, x_T, rng, prediction=prediction,
                num_steps=num_steps, spacing=spacing, timesteps=timesteps, t_start=t_start,
                clip_x0=clip_x0, return_trajectory=return_trajectory, inpaint=inpaint)


@_common
def dpm_solver_pp_sample(model_fn: Callable, process, x_T: chex.Array, rng=None, *,
                         prediction: str = "eps", num_steps=None, spacing=None,
                         timesteps=None, t_start=None, clip_x0: Optional[float] = None,
                         return_trajectory: bool = False, inpaint=None):
    """DPM-Solver++(2M), Lu et al. (2022), "DPM-Solver++", Algorithm 2: a multistep
    2nd-order solver of the data-prediction ODE in lambda = log(alpha/sigma),
    y_{i+1} = (s_{i+1}/s_i) y_i - a_{i+1} (e^{-h} - 1) D with
    D = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1}, r = h_{i-1}/h_i. One evaluation per level.

    The update is first order (D = x0_i, which is DDIM) at the first step, at the last
    (to sigma = 0, where h is infinite), and wherever the step more than doubles,
    r < ``DPM_SOLVER_MIN_STEP_RATIO`` = 1/2. The second-order term extrapolates the
    line through x0_{i-1}, x0_i (a span h_{i-1} in lambda) to the middle of a step h_i,
    so for small r it extrapolates far beyond the data it was fitted on, and it
    multiplies errors in the two estimates by |1 + 1/(2r)| + |1/(2r)| = 1 + 1/r. Variable
    step multistep methods keep their order and stability only for bounded step ratios
    (Hairer, Norsett & Wanner, "Solving ODEs I", Sec. III.5; step-size controllers bound
    the growth of a step for the same reason, ibid. Sec. II.4). Lu et al.'s reference
    code drops to first order at the final steps, which they find "a key to stabilizing
    the sampling ... with very few steps" (``lower_order_final``, below 15 steps); the
    ratio test drops exactly the steps that need it, whatever the number of steps. It
    matters on grids uniform in t whose last level sits at a tiny sigma: on the DDPM
    'linspace' grid with 10 levels the step into t = 0 has r = 0.21 and, taken at second
    order, scores worse than DDIM. Grids uniform in lambda ('logsnr') have r = 1.
    """
    def step(ctx, y, carry, i):
        g = ctx.grid
        prev_x0, prev_h = carry
        x0, _ = ctx.denoise(y, i)
        last = g.s[i + 1] <= 0
        lam_i = jnp.log(g.a[i] / g.s[i])
        lam_n = jnp.log(g.a[i + 1] / jnp.where(last, 1.0, g.s[i + 1]))
        h = jnp.where(last, 1.0, lam_n - lam_i)
        r = prev_h / h
        second = (i > 0) & ~last & (r >= DPM_SOLVER_MIN_STEP_RATIO)
        d = jnp.where(second, (1.0 + 0.5 / r) * x0 - (0.5 / r) * prev_x0, x0)
        y_next = (g.s[i + 1] / g.s[i]) * y - g.a[i + 1] * jnp.expm1(-h) * d
        y_next = jnp.where(last, g.a[i + 1] * x0, y_next)
        return y_next, (x0, h)

    init = (jnp.zeros_like(x_T), jnp.ones((), jnp.float32))
    return _run(step, model_fn, process, x_T, rng, prediction=prediction,
                num_steps=num_steps, spacing=spacing, timesteps=timesteps, t_start=t_start,
                clip_x0=clip_x0, return_trajectory=return_trajectory, inpaint=inpaint,
                init_carry=init)


_SAMPLERS = {
    "ddpm": ddpm_sample, "ddim": ddim_sample, "euler": euler_sample, "heun": heun_sample,
    "euler_maruyama": euler_maruyama_sample, "pc": pc_sample,
    "dpm_solver++": dpm_solver_pp_sample,
}


def sample(model_fn: Callable, process, x_T: chex.Array, rng: chex.PRNGKey, *,
           method: str = "ddpm", **kwargs):
    """Runs the sampler named ``method`` (one of METHODS) from x_T and returns x_0.

    Keyword arguments go to the sampler: see ``ddpm_sample``, ``ddim_sample`` (eta),
    ``euler_sample``, ``heun_sample``, ``euler_maruyama_sample``, ``pc_sample`` (snr,
    corrector_steps) and ``dpm_solver_pp_sample``.
    """
    if method not in _SAMPLERS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return _SAMPLERS[method](model_fn, process, x_T, rng, **kwargs)


def evaluations(method: str, num_steps: int, corrector_steps: int = 1) -> int:
    """Number of model evaluations (NFE) ``method`` spends on a grid of ``num_steps``."""
    checks.check_choice("method", method, METHODS)
    checks.check_int("num_steps", num_steps)
    checks.check_int("corrector_steps", corrector_steps, minimum=0)
    if method == "heun":
        return 2 * num_steps - 1
    if method == "pc":
        return num_steps + corrector_steps * (num_steps - 1)
    return num_steps


__all__ = ["Grid", "METHODS", "STOCHASTIC", "ddim_sample", "ddpm_algorithm2_mean",
           "ddpm_sample", "dpm_solver_pp_sample", "euler_maruyama_sample", "euler_sample",
           "evaluations", "heun_sample", "initial_noise", "make_grid", "pc_sample",
           "prior_noise", "sample"]

