"""Distillation math against closed forms: no training.

For Gaussian data N(m, s^2 I) every probability-flow ODE is solvable in closed form:
x_t = alpha_t m + sqrt(alpha_t^2 s^2 + sigma_t^2) xi with xi constant along a trajectory
(the flow is affine and maps the Gaussian marginals onto each other), so the exact ODE
step and the exact consistency function are known; the exact denoiser is
E[x_0 | x_t] = m + alpha s^2 / (alpha^2 s^2 + sigma^2) (x_t - alpha m).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion
from jaxgen.diffusion import analytic, distill

M, S = 0.7, 0.5          # data mean and std of the single Gaussian
PROCESSES = {"rf": diffusion.RectifiedFlow(), "vp": diffusion.VPProcess(),
             "ddpm": diffusion.ddpm_process(), "edm": diffusion.EDMProcess(),
             "ve": diffusion.VEProcess()}
PRED = {"rf": "v", "vp": "eps", "ddpm": "eps", "edm": "x0", "ve": "x0"}


def _np(process, t):
    return float(process.alpha(t)), float(process.sigma(t))


def _gauss_flow(process, x, t, s):
    """The exact probability-flow map from time t to time s for N(M, S^2) data."""
    a_t, s_t = process.alpha(t), process.sigma(t)
    a_s, s_s = process.alpha(s), process.sigma(s)
    a_t, s_t, a_s, s_s = (jnp.reshape(v, (-1,) + (1,) * (x.ndim - 1)) for v in (a_t, s_t, a_s, s_s))
    return a_s * M + jnp.sqrt(a_s ** 2 * S ** 2 + s_s ** 2) * (x - a_t * M) / jnp.sqrt(
        a_t ** 2 * S ** 2 + s_t ** 2)


def test_progressive_target_matches_hand_computed_two_steps():
    """Salimans & Ho Alg. 2 computed by hand in numpy for a single Gaussian (rectified
    flow, x0-predicting teacher), against ``progressive_target``."""
    proc = diffusion.RectifiedFlow()
    g = analytic.gaussian(3, mean=M, std=S)
    teacher = analytic.exact_denoiser(g, proc, "x0")
    x = np.array([[0.3, -1.2, 2.0], [1.5, 0.1, -0.4]], np.float32)
    t, t1, t2 = 0.75, 0.5, 0.25

    def x0_hat(z, tt):
        a, s = 1 - tt, tt
        return M + a * S ** 2 / (a * a * S ** 2 + s * s) * (z - a * M)

    def step(z, tt, ss):  # DDIM: alpha_s x0 + sigma_s (z - alpha_t x0) / sigma_t
        xh = x0_hat(z, tt)
        return (1 - ss) * xh + ss * (z - (1 - tt) * xh) / tt

    z2 = step(step(x.astype(np.float64), t, t1), t1, t2)
    want = (z2 - (t2 / t) * x) / ((1 - t2) - (t2 / t) * (1 - t))
    got = distill.progressive_target(teacher, proc, jnp.asarray(x), t, t1, t2, prediction="x0")
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-5, atol=2e-6)
    # The student's single DDIM step with x0_hat = target lands on the teacher's two steps.
    one = (1 - t2) * want + t2 * (x - (1 - t) * want) / t
    np.testing.assert_allclose(one, z2, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["ddpm"])
def test_student_with_target_reproduces_teacher_in_half_the_steps(name):
    """A student predicting the progressive target, run by the library's DDIM sampler on
    the halved grid, gives the teacher's 2N-step DDIM samples (independent code path;
    the discrete process checks integer times and the index -1 for clean data)."""
    proc = PROCESSES[name]
    teacher = analytic.exact_denoiser(analytic.toy_mixture_2d("ring8"), proc, PRED[name])
    ts = proc.timesteps(8)
    tsj = jnp.asarray(ts)
    kw = dict(prediction=PRED[name])

    def student(x, t):
        j = jnp.argmin(jnp.abs(tsj - t[0]).astype(jnp.float32))
        return distill.progressive_target(teacher, proc, x, t, tsj[j + 1], tsj[j + 2], **kw)

    @jax.jit
    def run(x_T):
        ref = diffusion.ddim_sample(teacher, proc, x_T, None, timesteps=ts, **kw)
        out = diffusion.ddim_sample(student, proc, x_T, None, prediction="x0",
                                    timesteps=distill.halve_grid(ts))
        # The teacher itself on the halved grid is far off: the comparison discriminates.
        half = diffusion.ddim_sample(teacher, proc, x_T, None, **kw,
                                     timesteps=distill.halve_grid(ts))
        return ref, out, jnp.max(jnp.abs(half - ref))

    ref, out, gap = run(diffusion.prior_noise(proc, jax.random.key(0), (64, 2)))
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=2e-5)
    assert float(gap) > 1e-2


def test_pd_weights_hand_values():
    a, s = jnp.array([0.6, 0.8, 0.0]), jnp.array([0.8, 0.6, 1.0])
    snr = np.array([0.36 / 0.64, 0.64 / 0.36, 0.0])
    np.testing.assert_allclose(distill.pd_weight("truncated_snr", a, s),
                               np.maximum(snr, 1.0), rtol=1e-6)
    np.testing.assert_allclose(distill.pd_weight("snr_plus_one", a, s), snr + 1, rtol=1e-6)
    with pytest.raises(ValueError, match="weighting"):
        distill.pd_weight("snr", a, s)


def test_pd_loss_zero_for_target_student_and_no_teacher_gradient():
    proc = diffusion.RectifiedFlow()
    g = analytic.gaussian(2, mean=M, std=S)
    ts = proc.timesteps(4)
    tsj = jnp.asarray(ts)
    x0 = g.sample(jax.random.key(1), 64)

    def teacher_scaled(c):
        base = analytic.exact_denoiser(g, proc, "x0")
        return lambda x, t: c * base(x, t)

    def student(x, t):  # the exact target, looked up per example
        j = jnp.argmin(jnp.abs(tsj[None, :] - t[:, None]), axis=1)
        return distill.progressive_target(teacher_scaled(1.0), proc, x, t, tsj[j + 1],
                                          tsj[j + 2], prediction="x0")

    kw = dict(timesteps=ts, student_prediction="x0", teacher_prediction="x0")

    @jax.jit
    def losses(c):
        zero = distill.progressive_distillation_loss(student, teacher_scaled(c), proc, x0,
                                                     jax.random.key(2), **kw)
        own = distill.progressive_distillation_loss(teacher_scaled(c), teacher_scaled(c),
                                                    proc, x0, jax.random.key(2), **kw)
        # The target is stop-gradient: the loss does not differentiate through the teacher.
        g = jax.grad(lambda c: jnp.mean(distill.progressive_distillation_loss(
            teacher_scaled(1.0), teacher_scaled(c), proc, x0, jax.random.key(2), **kw)))(c)
        return zero, own, g

    zero, own, g = losses(1.0)
    assert float(jnp.max(zero)) < 1e-9
    # The teacher's one step is not its two steps: its own loss is positive.
    assert float(jnp.mean(own)) > 1e-3
    assert float(g) == 0.0
    with pytest.raises(ValueError, match="2N levels"):
        distill.progressive_distillation_loss(student, student, proc, x0, jax.random.key(2),
                                              timesteps=ts[1:])


@pytest.mark.parametrize("name", ["rf", "vp", "ve"])
def test_consistency_boundary_condition_is_exact(name):
    proc = PROCESSES[name]
    t_min = 0.002 if name == "edm" else 1e-3
    big = lambda x, t: 1e3 * jnp.sin(x) + 7.0  # a backbone far from the identity
    f = distill.consistency_fn(big, proc, t_min=t_min)
    x = jax.random.normal(jax.random.key(0), (16, 3, 2))
    f = jax.jit(f)
    np.testing.assert_array_equal(np.asarray(f(x, jnp.full((16,), t_min))), np.asarray(x))
    # Away from the boundary the backbone is used.
    assert float(jnp.max(jnp.abs(f(x, jnp.full((16,), 0.5)) - x))) > 1.0


def test_consistency_coefficients_are_song_et_al_for_edm():
    """App. C of Song et al. (2023): c_skip = sd^2/((t - eps)^2 + sd^2),
    c_out = sd (t - eps)/sqrt(sd^2 + t^2) for alpha = 1, sigma = t."""
    t = np.array([0.002, 0.01, 0.5, 3.0, 80.0])
    sd, eps = 0.5, 0.002
    c_skip, c_out = distill.consistency_coefficients(diffusion.EDMProcess(), t, eps, sd)
    np.testing.assert_allclose(c_skip, sd ** 2 / ((t - eps) ** 2 + sd ** 2), rtol=1e-5)
    np.testing.assert_allclose(c_out, sd * (t - eps) / np.sqrt(sd ** 2 + t ** 2), rtol=1e-5,
                               atol=1e-7)
    # Rectified flow at t = 1 (alpha = 0): finite, c_skip = 0 and c_out = sd.
    c_skip, c_out = distill.consistency_coefficients(diffusion.RectifiedFlow(), 1.0, 1e-3, sd)
    assert float(c_skip) == 0.0 and abs(float(c_out) - sd) < 1e-6


def _exact_cf(proc, t_min):
    """The exact consistency function of N(M, S^2) data: the flow map to t_min."""
    return lambda x, t: _gauss_flow(proc, x, t, jnp.full_like(t, t_min))


def test_cd_loss_zero_for_exact_consistency_function_and_exact_solver():
    proc = diffusion.VPProcess()
    t_min = 1e-3
    g = analytic.gaussian(4, mean=M, std=S)
    x0 = g.sample(jax.random.key(0), 512)
    ts = distill.consistency_grid(proc, 10, t_min=t_min)
    f = _exact_cf(proc, t_min)
    exact_step = lambda x, t, s: _gauss_flow(proc, x, t, s)
    loss, wrong = jax.jit(lambda: (
        distill.consistency_distillation_loss(f, f, exact_step, proc, x0, jax.random.key(1),
                                              timesteps=ts),
        # A wrong consistency function (the identity off the boundary) is penalised.
        distill.consistency_distillation_loss(lambda x, t: x, lambda x, t: x, exact_step,
                                              proc, x0, jax.random.key(1), timesteps=ts)))()
    assert float(jnp.max(loss)) < 1e-10
    assert float(jnp.mean(wrong)) > 1e-2


@pytest.mark.parametrize("solver,order", [("ddim", 1), ("heun", 2)])
def test_cd_loss_with_teacher_solver_shrinks_at_the_solver_order(solver, order):
    """With the exact f, the loss is the squared local error of the teacher step,
    O(h^(2 (order + 1))): doubling N divides it by about 2^(2 order + 2)."""
    proc = diffusion.RectifiedFlow()
    t_min = 1e-3
    g = analytic.gaussian(4, mean=M, std=S)
    teacher = analytic.exact_denoiser(g, proc, "v")
    step = distill.ode_step_fn(teacher, proc, prediction="v", solver=solver)
    x0 = g.sample(jax.random.key(0), 2048)
    f = _exact_cf(proc, t_min)
    loss = jax.jit(lambda ts: jnp.mean(distill.consistency_distillation_loss(
        f, f, step, proc, x0, jax.random.key(1), timesteps=ts)))
    # Equal-length grids (one compile): the first 17 points of the N = 17, 33, 65 grids
    # draw the same n; only the step h halves.
    losses = [float(loss(distill.consistency_grid(proc, n, t_min=t_min)[:17]))
              for n in (17, 33, 65)]
    ratios = np.array(losses[:-1]) / np.array(losses[1:])
    want = 2.0 ** (2 * order + 2)
    assert np.all(ratios > want / 2) and np.all(ratios < want * 2), (losses, ratios)


@pytest.mark.parametrize("taus", [[1.0], [1.0, 0.7, 0.3]])
def test_multistep_consistency_sampling_with_exact_function_is_exact(taus):
    """Song et al. Alg. 1 with the exact consistency function of a Gaussian returns
    x_{t_min} ~ N(alpha_m M, alpha_m^2 S^2 + sigma_m^2) after any number of steps."""
    proc = diffusion.RectifiedFlow()
    t_min = 0.05
    n = 20000
    x_T = diffusion.prior_noise(proc, jax.random.key(3), (n, 2))
    x = jax.jit(lambda x_T: distill.consistency_sample(
        _exact_cf(proc, t_min), proc, x_T, jax.random.key(4), timesteps=taus,
        t_min=t_min))(x_T)
    a_m, s_m = _np(proc, t_min)
    std = np.sqrt(a_m ** 2 * S ** 2 + s_m ** 2)
    x = np.asarray(x)
    # n = 20000: the sample mean's std error is std/141, the sample std's about std/200.
    np.testing.assert_allclose(x.mean(0), a_m * M, atol=5 * std / 141)
    np.testing.assert_allclose(x.std(0), std, rtol=5 / 200)


def test_bad_inputs():
    proc = diffusion.RectifiedFlow()
    with pytest.raises(ValueError, match="even number of levels"):
        distill.halve_grid(proc.timesteps(3))
    with pytest.raises(ValueError, match="t_min"):
        distill.consistency_grid(proc, 5, t_min=0.5)
    with pytest.raises(ValueError, match="solver"):
        distill.ode_step_fn(lambda x, t: x, proc, solver="rk4")
    with pytest.raises(ValueError, match="exceed t_min"):
        distill.consistency_sample(lambda x, t: x, proc, jnp.zeros((2, 2)), jax.random.key(0),
                                   timesteps=[1.0, 0.01], t_min=0.05)
    with pytest.raises(ValueError, match="increase"):
        distill.consistency_distillation_loss(
            lambda x, t: x, lambda x, t: x, lambda x, t, s: x, proc, jnp.zeros((2, 2)),
            jax.random.key(0), timesteps=np.array([0.5, 0.1], np.float32))
