"""Few-step distillation: progressive distillation and consistency models.

Progressive distillation (Salimans & Ho 2022, "Progressive Distillation for Fast Sampling
of Diffusion Models", Algorithm 2): a student is trained so that ONE deterministic DDIM
step from t to t'' lands where TWO DDIM steps of the teacher (t -> t' -> t'') land; the
student then becomes the teacher and the number of steps halves again.

Consistency distillation (Song, Dhariwal, Chen & Sutskever 2023, "Consistency Models",
Algorithm 2): a consistency function f(x_t, t) maps every point of a probability-flow ODE
trajectory to its end at t_min. Its parameterisation enforces f(x, t_min) = x exactly
(Eq. 5, App. C); it is trained so that f at adjacent times t_{n+1} > t_n of a grid agrees
on x_{t_{n+1}} and on one teacher ODE step x_hat_{t_n}, against a stop-gradient EMA copy of
itself (the target network). Sampling (Algorithm 1) takes 1 step, or alternates
denoising with re-noising for a few.

Notation as in the rest of ``jaxgen.diffusion``: x_t = alpha(t) x_0 + sigma(t) z; models
are ``model_fn(x_t (B, ...), t (B,)) -> prediction`` of a kind in ``targets.PREDICTIONS``.
Time arrays may be traced (per-example times inside a loss), so nothing here needs a
concrete grid except where a function says so.
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.core import checks
from jaxgen.core.rng import per_example_keys
from jaxgen.diffusion import targets

PD_WEIGHTINGS = ("truncated_snr", "snr_plus_one")
ODE_SOLVERS = ("ddim", "heun")


def _discrete(process) -> bool:
    return bool(getattr(process, "discrete", False))


def _times(t, x, name="t"):
    """Broadcasts a scalar or (B,) time to (B,) for x of shape (B, ...)."""
    t = jnp.asarray(t)
    if t.ndim == 0:
        t = jnp.broadcast_to(t, (x.shape[0],))
    if t.shape != (x.shape[0],):
        raise ValueError(f"{name} must be a scalar or have shape ({x.shape[0]},), one time "
                         f"per example, got {t.shape}")
    return t


def _col(v, x):
    """(B,) -> (B, 1, ...) with the rank of x."""
    v = jnp.asarray(v, jnp.float32)
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def _scales(process, t, x, derivatives: bool = False):
    """alpha, sigma (and d alpha/dt, d sigma/dt for a continuous process) as columns."""
    a, s = _col(process.alpha(t), x), _col(process.sigma(t), x)
    if not derivatives or _discrete(process):
        return a, s, None, None
    da, ds = process.derivatives(t)
    return a, s, _col(da, x), _col(ds, x)


def denoise(model_fn: Callable, process, x_t: chex.Array, t, prediction: str):
    """(x0_hat, eps_hat), each shaped like x_t (B, ...), implied by ``model_fn``'s
    prediction (of kind ``prediction``) at x_t and the scalar or (B,) time t."""
    targets._check(prediction)
    checks.check_float_array("x_t", x_t)
    checks.check_batched("x_t", x_t)
    t = _times(t, x_t)
    a, s, da, ds = _scales(process, t, x_t, derivatives=prediction == "velocity")
    pred = model_fn(x_t, t)
    if jnp.shape(pred) != x_t.shape:
        raise ValueError(f"model_fn returned shape {jnp.shape(pred)}, expected {x_t.shape}")
    return targets.to_x0_eps(prediction, pred, x_t, a, s, da, ds)


def ddim_step(model_fn: Callable, process, x_t: chex.Array, t, s, *,
              prediction: str = "eps") -> chex.Array:
    """One deterministic DDIM step from time t to time s (Song, Meng & Ermon 2021,
    Eq. 12 with sigma = 0): x_s = alpha_s x0_hat + sigma_s eps_hat.

    This is the step ``samplers.ddim_sample(eta=0)`` takes between two grid levels, with
    per-example times (scalars or (B,)), s closer to clean than t; at s = t_clean
    (sigma_s = 0) it returns alpha_s x0_hat. Returns x_s shaped like x_t (B, ...).
    """
    x0, eps = denoise(model_fn, process, x_t, t, prediction)
    s = _times(s, x_t, "s")
    return (_col(process.alpha(s), x_t) * x0 + _col(process.sigma(s), x_t) * eps
            ).astype(x_t.dtype)


# --------------------------------------------------------------------------------------
# Progressive distillation.


def progressive_target(teacher_fn: Callable, process, x_t: chex.Array, t, t_mid, t_next, *,
                       prediction: str = "eps") -> chex.Array:
    """The x-space target of progressive distillation (Salimans & Ho 2022, Alg. 2).

    Two teacher DDIM steps give x_{t''} from x_t via t'; the target x_tilde is the x0
    estimate for which the student's single DDIM step t -> t'' lands exactly there:

      x_tilde = (x_{t''} - (sigma_{t''} / sigma_t) x_t) / (alpha_{t''} - (sigma_{t''} /
                sigma_t) alpha_t).

    ``teacher_fn`` (x_t, t) -> prediction of kind ``prediction``; x_t (B, ...); t, t_mid,
    t_next scalars or (B,) times t > t' > t'' (t'' may be t_clean). Returns x_tilde shaped
    like x_t (no gradient is stopped here; the loss does it).
    """
    x_mid = ddim_step(teacher_fn, process, x_t, t, t_mid, prediction=prediction)
    x_next = ddim_step(teacher_fn, process, x_mid, t_mid, t_next, prediction=prediction)
    t, t_next = _times(t, x_t), _times(t_next, x_t, "t_next")
    a_t, s_t = _scales(process, t, x_t)[:2]
    a_n, s_n = _scales(process, t_next, x_t)[:2]
    ratio = s_n / s_t
    return ((x_next - ratio * x_t) / (a_n - ratio * a_t)).astype(x_t.dtype)


def pd_weight(weighting: str, alpha, sigma):
    """Weight on the x-space error ||x_tilde - x0_hat||^2 (Salimans & Ho 2022, Sec. 4):

      'truncated_snr': max(SNR, 1) = max(||x - x_hat||^2, ||eps - eps_hat||^2) / ||x - x_hat||^2,
      'snr_plus_one':  SNR + 1, the v-MSE ||v - v_hat||^2 of a variance-preserving process,

    with SNR = alpha^2 / sigma^2. Both stay finite at SNR = 0 (pure noise), where the
    eps-MSE weight SNR would vanish and the student would learn nothing at t_max.
    """
    checks.check_choice("weighting", weighting, PD_WEIGHTINGS)
    snr = jnp.square(alpha / sigma)
    return jnp.maximum(snr, 1.0) if weighting == "truncated_snr" else snr + 1.0


def halve_grid(timesteps) -> np.ndarray:
    """The student's grid of progressive distillation: every other level of the
    teacher's (2N + 1)-point grid (2N levels, then t_clean), i.e. N levels then t_clean."""
    ts = _check_grid(timesteps, "timesteps")
    if (ts.shape[0] - 1) % 2:
        raise ValueError(f"the teacher grid must have an even number of levels (2N + 1 "
                         f"entries with t_clean), got {ts.shape[0]} entries")
    return ts[::2]


def _draw(rng, x0, n, positions):
    """Per example (key fold_in(rng, position)): a step index in [0, n) and z ~ N(0, I)."""
    def draw(key):
        k_i, k_z = jax.random.split(key)
        return (jax.random.randint(k_i, (), 0, n),
                jax.random.normal(k_z, x0.shape[1:], x0.dtype))

    return jax.vmap(draw)(per_example_keys(rng, x0.shape[0], positions=positions))


def _check_grid(timesteps, name, increasing=False):
    """A concrete grid must be 1-D, >= 2 entries, strictly monotone; traced ones pass."""
    if checks.concrete(timesteps) is None:
        return timesteps
    ts = np.asarray(timesteps)
    if ts.ndim != 1 or ts.size < 2:
        raise ValueError(f"{name} must be 1-D with >= 2 entries, got shape {ts.shape}")
    d = np.diff(ts.astype(np.float64))
    if not (np.all(d > 0) if increasing else np.all(d < 0)):
        order = "increase" if increasing else "decrease"
        raise ValueError(f"{name} must {order} strictly, got {ts.tolist()}")
    return ts


def progressive_distillation_loss(student_fn: Callable, teacher_fn: Callable, process,
                                  x0: chex.Array, rng: chex.PRNGKey, *, timesteps,
                                  student_prediction: str = "v",
                                  teacher_prediction: str = "v",
                                  weighting: str = "truncated_snr",
                                  positions=None) -> chex.Array:
    """Per-example progressive-distillation loss (Salimans & Ho 2022, Algorithm 2).

    Example b draws a student step i ~ U{0..N-1} and z ~ N(0, I) from fold_in(rng, b),
    forms x_t = alpha_t x_0 + sigma_t z at t = timesteps[2i], computes the teacher target
    ``progressive_target`` through t' = timesteps[2i+1] to t'' = timesteps[2i+2] (gradient
    stopped) and returns w(t) ||x_tilde - x0_hat_student||^2 averaged over features, with
    w from ``pd_weight``. The student may predict any target; its output is converted to
    x0_hat, so the loss is the paper's whatever the parameterisation.

    Args:
      student_fn, teacher_fn: (x_t, t) -> prediction of the named kinds.
      process, x0 (B, ...), rng: any process, clean data, PRNG key.
      timesteps: the TEACHER's decreasing grid of 2N levels followed by t_clean (e.g.
        ``process.timesteps(2 * N)``); the student's grid is ``halve_grid(timesteps)``.
      weighting: one of PD_WEIGHTINGS.
      positions: (B,) places of the examples in a larger batch (default 0..B-1).

    Returns:
      (B,) losses.
    """
    checks.check_choice("weighting", weighting, PD_WEIGHTINGS)
    checks.check_float_array("x0", x0)
    checks.check_batched("x0", x0)
    ts = jnp.asarray(_check_grid(timesteps, "timesteps"))
    if (ts.shape[0] - 1) % 2:
        raise ValueError(f"timesteps must hold 2N levels then t_clean (odd length), got "
                         f"{ts.shape[0]} entries")
    i, z = _draw(rng, x0, (ts.shape[0] - 1) // 2, positions)
    t, t_mid, t_next = ts[2 * i], ts[2 * i + 1], ts[2 * i + 2]
    a, s = _scales(process, t, x0)[:2]
    x_t = (a * x0 + s * z).astype(x0.dtype)
    x_tilde = jax.lax.stop_gradient(progressive_target(
        teacher_fn, process, x_t, t, t_mid, t_next, prediction=teacher_prediction))
    x0_hat = denoise(student_fn, process, x_t, t, student_prediction)[0]
    mse = jnp.mean(jnp.square(x0_hat - x_tilde), axis=tuple(range(1, x0.ndim)))
    return pd_weight(weighting, a, s).reshape(-1) * mse


# --------------------------------------------------------------------------------------
# Consistency models.


def consistency_coefficients(process, t, t_min, sigma_data: float = 0.5):
    """(c_skip, c_out) of f(x_t, t) = c_skip(t) x_t + c_out(t) F(x_t, t).

    Song et al. (2023, App. C) use, for alpha = 1 and sigma(t) = t (EDM/VE),
    c_skip = sd^2 / ((t - t_min)^2 + sd^2) and c_out = sd (t - t_min) / sqrt(sd^2 + t^2).
    For a general process the same is applied to the noise-to-signal ratio u = sigma/alpha
    (x scaled by 1/alpha, as ``targets.edm_precondition``), with the output mapped back to
    the frame of x_{t_min} (times alpha(t_min)); with delta = sigma_t alpha_m - sigma_m
    alpha_t (m = t_min, so u - u_m = delta / (alpha_t alpha_m)):

      c_skip = (alpha_m / alpha_t) q / (delta^2 + q),  q = sd^2 alpha_t^2 alpha_m^2,
      c_out  = sd delta / (alpha_m sqrt(sd^2 alpha_t^2 + sigma_t^2)).

    Both are finite at alpha_t = 0 (rectified flow at t = 1: c_skip = 0, c_out = sd). At
    t = t_min they are set to exactly 1 and 0: under jit, alpha(t_min) folded as a
    constant and alpha(t) computed at run time may differ in the last bit, and the
    boundary condition f(x, t_min) = x should hold to the bit, not only to rounding.

    Returns (c_skip, c_out) shaped like t (scalar or (B,)); t_min is the boundary time.
    """
    checks.check_positive("sigma_data", sigma_data)
    t = jnp.asarray(t)
    a, s = jnp.asarray(process.alpha(t), jnp.float32), jnp.asarray(process.sigma(t), jnp.float32)
    a_m = jnp.asarray(process.alpha(t_min), jnp.float32)
    s_m = jnp.asarray(process.sigma(t_min), jnp.float32)
    delta = s * a_m - s_m * a
    q = sigma_data ** 2 * jnp.square(a * a_m)
    ratio = jnp.where(a > 0, a_m / jnp.where(a > 0, a, 1.0), 0.0)
    c_skip = ratio * (q / (jnp.square(delta) + q))
    c_out = sigma_data * delta / (a_m * jnp.sqrt(sigma_data ** 2 * a * a + s * s))
    at_min = t == jnp.asarray(t_min, t.dtype)
    return jnp.where(at_min, 1.0, c_skip), jnp.where(at_min, 0.0, c_out)


def consistency_fn(backbone: Callable, process, *, t_min, sigma_data: float = 0.5) -> Callable:
    """Wraps a free-form network F as a consistency function (Song et al. 2023, Eq. 5):
    f(x_t, t) = c_skip(t) x_t + c_out(t) F(x_t, t), with the coefficients of
    ``consistency_coefficients``, so that f(x, t_min) = x exactly.

    ``backbone`` is F(x_t (B, ...), t (B,)) -> array like x_t; ``t_min`` is Song et al.'s
    epsilon (a Python float). Returns f(x_t, t): the estimate of x_{t_min} on x_t's
    probability-flow ODE trajectory.
    """
    def f(x_t, t):
        t = _times(t, x_t)
        c_skip, c_out = consistency_coefficients(process, t, t_min, sigma_data)
        out = backbone(x_t, t)
        if jnp.shape(out) != x_t.shape:
            raise ValueError(f"backbone returned shape {jnp.shape(out)}, expected {x_t.shape}")
        return (_col(c_skip, x_t) * x_t + _col(c_out, x_t) * out).astype(x_t.dtype)

    return f


def consistency_grid(process, num_points: int, *, spacing=None, t_min=None) -> np.ndarray:
    """The increasing grid t_1 = t_min < t_2 < ... < t_N = t_max of consistency
    distillation (Song et al. 2023, Sec. 4): t_min followed by the N - 1 levels of
    ``process.timesteps(N - 1, spacing)`` in increasing order.

    ``t_min`` (default ``process.t_eps``) must lie below every level; N >= 2.
    """
    n = checks.check_int("num_points", num_points, minimum=2)
    t_min = float(process.t_eps if t_min is None else t_min)
    levels = np.asarray(process.timesteps(n - 1, spacing))[:-1][::-1]
    if not t_min < float(levels[0]):
        raise ValueError(f"t_min = {t_min} must lie below the smallest level {levels[0]} of "
                         f"the {n - 1}-level grid; pass a smaller t_min or build the grid "
                         f"yourself")
    return np.concatenate([[t_min], levels]).astype(np.float32)


def ode_step_fn(teacher_fn: Callable, process, *, prediction: str = "eps",
                solver: str = "ddim") -> Callable:
    """One step of a probability-flow ODE solver driven by the teacher:
    ``step(x_t, t, s) -> x_s`` with per-example times (Song et al. 2023's Phi).

    'ddim' is the first-order DDIM step (``ddim_step``; Euler in the noise-to-signal
    frame). 'heun' is Heun's second-order step (Karras et al. 2022, Alg. 1), taken in the
    process's ``solver_time`` frame like ``samplers.heun_sample``: in t with slope
    dx/dt = alpha' x0_hat + sigma' eps_hat, or in u = sigma/alpha on y = x/alpha with
    slope eps_hat. s must have sigma_s > 0 for 'heun' (its second evaluation is at s).
    """
    checks.check_choice("solver", solver, ODE_SOLVERS)
    targets._check(prediction)
    if solver == "ddim":
        return lambda x, t, s: ddim_step(teacher_fn, process, x, t, s, prediction=prediction)
    snr_frame = process.solver_time == "snr"

    def slope(x, t):
        x0, eps = denoise(teacher_fn, process, x, t, prediction)
        if snr_frame:
            return eps
        _, _, da, ds = _scales(process, t, x, derivatives=True)
        return da * x0 + ds * eps

    def step(x, t, s):
        t, s = _times(t, x), _times(s, x, "s")
        a_t, s_t = _scales(process, t, x)[:2]
        a_s, s_s = _scales(process, s, x)[:2]
        if snr_frame:
            y, h = x / a_t, s_s / a_s - s_t / a_t
        else:
            y, h = x, _col(s - t, x)
        scale = a_s if snr_frame else 1.0
        d1 = slope(x, t)
        y_euler = y + h * d1
        d2 = slope((scale * y_euler).astype(x.dtype), s)
        return (scale * (y + 0.5 * h * (d1 + d2))).astype(x.dtype)

    return step


def consistency_distillation_loss(student_f: Callable, target_f: Callable, ode_step: Callable,
                                  process, x0: chex.Array, rng: chex.PRNGKey, *, timesteps,
                                  positions=None) -> chex.Array:
    """Per-example consistency-distillation loss (Song et al. 2023, Eq. 7, Algorithm 2)
    with the squared L2 metric and lambda = 1.

    Example b draws n ~ U{0..N-2} and z from fold_in(rng, b), forms
    x_{t_{n+1}} = alpha x_0 + sigma z, takes one teacher solver step to
    x_hat_{t_n} = ode_step(x_{t_{n+1}}, t_{n+1}, t_n), and returns
    mean((f_theta(x_{t_{n+1}}, t_{n+1}) - stopgrad(f_theta-(x_hat_{t_n}, t_n)))^2).

    Args:
      student_f: the online consistency function f_theta (``consistency_fn``).
      target_f: the target network f_theta- (the EMA of the student), gradient stopped.
      ode_step: ``step(x_t, t, s) -> x_s`` (``ode_step_fn`` of the teacher).
      process, x0 (B, ...), rng, positions: as in ``progressive_distillation_loss``.
      timesteps: increasing grid t_1 = t_min < ... < t_N (``consistency_grid``).

    Returns:
      (B,) losses.
    """
    checks.check_float_array("x0", x0)
    checks.check_batched("x0", x0)
    ts = jnp.asarray(_check_grid(timesteps, "timesteps", increasing=True))
    i, z = _draw(rng, x0, ts.shape[0] - 1, positions)
    t_lo, t_hi = ts[i], ts[i + 1]
    a, s = _scales(process, t_hi, x0)[:2]
    x_hi = (a * x0 + s * z).astype(x0.dtype)
    x_lo = jax.lax.stop_gradient(ode_step(x_hi, t_hi, t_lo))
    target = jax.lax.stop_gradient(target_f(x_lo, t_lo))
    return jnp.mean(jnp.square(student_f(x_hi, t_hi) - target), axis=tuple(range(1, x0.ndim)))


def consistency_sample(f: Callable, process, x_T: chex.Array, rng: chex.PRNGKey, *,
                       timesteps, t_min) -> chex.Array:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1).

    x <- f(x_T, tau_0); then for each later tau_k: re-noise the estimate of x_{t_min} to
    level tau_k with the forward jump of the process,
    x_tau = (alpha_tau / alpha_m) x + sqrt(sigma_tau^2 - (alpha_tau sigma_m / alpha_m)^2) z
    (Song et al.'s x + sqrt(tau^2 - eps^2) z when alpha = 1), and x <- f(x_tau, tau_k).
    One model evaluation per entry of ``timesteps``.

    Args:
      f: consistency function (x_t, t) -> x_{t_min}, with boundary time ``t_min``.
      x_T: (B, ...) start at time timesteps[0] (e.g. ``samplers.prior_noise``).
      rng: PRNG key; example b at step k uses fold_in(fold_in(rng, b), k).
      timesteps: concrete decreasing times tau_0 (the time of x_T) > tau_1 > ... > t_min.

    Returns:
      (B, ...) samples.
    """
    checks.check_float_array("x_T", x_T)
    checks.check_batched("x_T", x_T)
    if checks.concrete(timesteps) is None:
        raise ValueError("timesteps must be concrete (a NumPy array or list)")
    ts = np.asarray(timesteps, np.float32).reshape(-1)
    if ts.size > 1:
        _check_grid(ts, "timesteps")
    if not np.all(ts > t_min):
        raise ValueError(f"every time must exceed t_min = {t_min}, got {ts.tolist()}")
    keys = per_example_keys(rng, x_T.shape[0])
    b = x_T.shape[0]
    x = f(x_T, jnp.full((b,), ts[0], jnp.float32))
    if ts.size == 1:
        return x
    with jax.ensure_compile_time_eval():
        a_m, s_m = float(process.alpha(t_min)), float(process.sigma(t_min))
        taus = jnp.asarray(ts[1:])
        a_tau = jnp.asarray(process.alpha(taus), jnp.float32)
        s_tau = jnp.asarray(process.sigma(taus), jnp.float32)
    jump = jnp.sqrt(jnp.maximum(s_tau ** 2 - (a_tau * s_m / a_m) ** 2, 0.0))

    def body(x, k):
        z = jax.vmap(lambda key: jax.random.normal(jax.random.fold_in(key, k), x.shape[1:],
                                                   x.dtype))(keys)
        x_tau = (a_tau[k] / a_m) * x + jump[k] * z
        return f(x_tau.astype(x.dtype), jnp.full((b,), taus[k], jnp.float32)), None

    x, _ = jax.lax.scan(body, x, jnp.arange(ts.size - 1))
    return x


__all__ = ["ODE_SOLVERS", "PD_WEIGHTINGS", "consistency_coefficients",
           "consistency_distillation_loss", "consistency_fn", "consistency_grid",
           "consistency_sample", "ddim_step", "denoise", "halve_grid", "ode_step_fn",
           "pd_weight", "progressive_distillation_loss", "progressive_target"]
