"""Processes, schedules, grids and target conversions: closed forms and identities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion
from jaxgen.diffusion import targets

CONTINUOUS = [diffusion.VPProcess(), diffusion.VEProcess(), diffusion.RectifiedFlow(),
              diffusion.EDMProcess()]
ALL = [diffusion.ddpm_process(), diffusion.ddpm_process("cosine"),
       diffusion.ddpm_process("sigmoid")] + CONTINUOUS


def test_linear_schedule_terminal_values_match_ho_et_al():
    """Ho et al. (2020), Sec. 4: with beta 1e-4..0.02 over T=1000 the prior term
    L_T = KL(q(x_T|x_0) || N(0, I)) is about 1e-5 bits per dimension."""
    process = diffusion.ddpm_process()
    betas = np.linspace(1e-4, 0.02, 1000)
    abar_T = np.exp(np.sum(np.log1p(-betas)))
    np.testing.assert_allclose(float(process.alpha(999)) ** 2, abar_T, rtol=1e-4)
    assert 4.0e-5 < abar_T < 4.1e-5
    # KL per dimension for data uniform on [-1, 1] (E[x^2] = 1/3), in bits.
    kl = 0.5 * (abar_T / 3 + (1 - abar_T) - 1 - np.log1p(-abar_T)) / np.log(2)
    assert 5e-6 < kl < 2e-5


def test_cosine_schedule_follows_nichol_dhariwal_eq17():
    process = diffusion.ddpm_process("cosine", num_timesteps=1000)
    f = lambda t: np.cos((t / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2
    t = np.array([0, 100, 500, 900])
    np.testing.assert_allclose(np.asarray(process.alpha(t)) ** 2, f(t + 1) / f(0), rtol=1e-4)
    assert np.all(np.asarray(process.betas) <= 0.999)


@pytest.mark.parametrize("process", ALL, ids=lambda p: type(p).__name__)
def test_every_process_interpolates_from_data_to_noise(process):
    ts = process.timesteps(12)
    a, s = np.asarray(process.alpha(ts)), np.asarray(process.sigma(ts))
    np.seterr(divide="ignore")  # rectified flow: alpha(t_max) = 0, ratio infinite
    assert a[-1] == 1.0 and s[-1] == 0.0, "the grid must end at clean data"
    assert np.all(np.diff(s / a) < 0), "noise-to-signal ratio must fall along the grid"
    assert s[0] / a[0] > 45 or (type(process).__name__ == "RectifiedFlow" and a[0] == 0)
    np.testing.assert_allclose(process.prior_std,
                               np.sqrt(a[0] ** 2 + s[0] ** 2), rtol=1e-5)


def test_vp_process_matches_song_et_al_closed_form():
    """Song et al. (2021), Eq. 29: the VP SDE's perturbation kernel mean coefficient is
    exp(-1/4 t^2 (b1 - b0) - 1/2 t b0); check it against integrating dx = -beta/2 x dt."""
    p = diffusion.VPProcess(beta_min=0.1, beta_max=20.0)
    t = np.linspace(0, 1, 100001)
    beta = 0.1 + t * 19.9
    log_a = -0.5 * np.concatenate([[0.0], np.cumsum(0.5 * (beta[1:] + beta[:-1]) * np.diff(t))])
    for i in (1000, 50000, 100000):
        np.testing.assert_allclose(float(p.alpha(t[i])), np.exp(log_a[i]), rtol=1e-4)
        np.testing.assert_allclose(float(p.alpha(t[i])) ** 2 + float(p.sigma(t[i])) ** 2, 1.0,
                                   atol=1e-6)


@pytest.mark.parametrize("process", CONTINUOUS, ids=lambda p: type(p).__name__)
def test_derivatives_match_finite_differences(process):
    t = np.float32(0.3 * process.t_max)
    h = 1e-3 * process.t_max
    da, ds = process.derivatives(jnp.asarray([t]))
    fd_a = (float(process.alpha(t + h)) - float(process.alpha(t - h))) / (2 * h)
    fd_s = (float(process.sigma(t + h)) - float(process.sigma(t - h))) / (2 * h)
    np.testing.assert_allclose(float(da[0]), fd_a, rtol=2e-2, atol=1e-4)
    np.testing.assert_allclose(float(ds[0]), fd_s, rtol=2e-2, atol=1e-4)


def test_discrete_spacings_follow_lin_et_al_table2():
    p = diffusion.ddpm_process()
    np.testing.assert_array_equal(p.timesteps(10, "leading")[:-1], np.arange(0, 1000, 100)[::-1])
    np.testing.assert_array_equal(p.timesteps(10, "trailing")[:-1],
                                  np.arange(999, 0, -100))
    lin = p.timesteps(10, "linspace")
    assert lin[0] == 999 and lin[-2] == 0 and lin[-1] == -1
    full = p.timesteps(1000)
    np.testing.assert_array_equal(full[:-1], np.arange(999, -1, -1))
    with pytest.raises(ValueError, match="num_steps"):
        p.timesteps(1001)
    with pytest.raises(ValueError, match="spacing"):
        p.timesteps(10, "uniform")


def test_karras_grid_is_eq5_of_karras_et_al():
    p = diffusion.EDMProcess()
    ts = p.timesteps(18)
    i = np.arange(18) / 17
    want = (80 ** (1 / 7) + i * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    np.testing.assert_allclose(ts[:-1], want, rtol=1e-5)
    assert ts[-1] == 0
    # the bisection inverse of the VP ratio agrees with the analytic one
    vp = diffusion.VPProcess()
    r = np.array([0.05, 1.0, 20.0], np.float32)
    t = np.asarray(vp.t_from_ratio(r))
    np.testing.assert_allclose(np.asarray(vp.ratio(t)), r, rtol=1e-4)


# --- prediction targets -------------------------------------------------------------------

@pytest.mark.parametrize("process", [diffusion.VPProcess(), diffusion.RectifiedFlow(),
                                     diffusion.EDMProcess(), diffusion.VEProcess()],
                         ids=lambda p: type(p).__name__)
def test_conversions_round_trip_between_all_targets(process):
    t = jnp.asarray([0.2, 0.5, 0.8], jnp.float32) * process.t_max
    kx, kz = jax.random.split(jax.random.key(0))
    x0 = jax.random.normal(kx, (3, 5))
    z = jax.random.normal(kz, (3, 5))
    a, s = process.alpha(t)[:, None], process.sigma(t)[:, None]
    da, ds = [v[:, None] for v in process.derivatives(t)]
    x_t = a * x0 + s * z
    for src in targets.PREDICTIONS:
        y = targets.target(src, x0, z, a, s, da, ds)
        got_x0, got_z = targets.to_x0_eps(src, y, x_t, a, s, da, ds)
        np.testing.assert_allclose(got_x0, x0, atol=2e-4, err_msg=src)
        np.testing.assert_allclose(got_z, z, atol=2e-4, err_msg=src)
        for dst in targets.PREDICTIONS:
            conv = targets.convert(y, src, dst, x_t, a, s, da, ds)
            np.testing.assert_allclose(conv, targets.target(dst, x0, z, a, s, da, ds),
                                       rtol=1e-3, atol=2e-4, err_msg=f"{src}->{dst}")


def test_target_definitions():
    """v = alpha z - sigma x0 (Salimans & Ho); rectified-flow velocity z - x0 (lectures);
    score = -z / sigma."""
    rf = diffusion.RectifiedFlow()
    t = jnp.asarray([0.3])
    x0, z = jnp.ones((1, 2)), 2 * jnp.ones((1, 2))
    da, ds = rf.derivatives(t)
    a, s = rf.alpha(t), rf.sigma(t)
    np.testing.assert_allclose(targets.target("velocity", x0, z, a, s, da, ds), z - x0)
    np.testing.assert_allclose(targets.target("v", x0, z, a, s), 0.7 * z - 0.3 * x0, rtol=1e-6)
    np.testing.assert_allclose(targets.target("score", x0, z, a, s), -z / 0.3, rtol=1e-6)
    with pytest.raises(ValueError, match="continuous-time"):
        targets.target("velocity", x0, z, a, s)


def test_x0_scale_is_the_jacobian_of_each_target():
    """d target / d x0 at fixed x_t (so eps moves by -alpha/sigma per unit of x0)."""
    p = diffusion.VPProcess()
    t = jnp.asarray(0.4)
    a, s = p.alpha(t), p.sigma(t)
    da, ds = p.derivatives(t)
    x_t = jnp.asarray(0.7)
    for pred in targets.PREDICTIONS:
        def as_target(x0):
            eps = (x_t - a * x0) / s
            return targets.target(pred, x0, eps, a, s, da, ds)
        jac = jax.grad(as_target)(jnp.asarray(0.1))
        np.testing.assert_allclose(abs(float(jac)),
                                   float(targets.x0_scale(pred, a, s, da, ds)), rtol=1e-4,
                                   err_msg=pred)


def test_edm_preconditioning_coefficients():
    """Karras et al. Table 1: D = c_skip x + c_out F(c_in x, log(sigma)/4)."""
    p = diffusion.EDMProcess()
    seen = {}

    def backbone(x, c_noise):
        seen["x"], seen["c"] = x, c_noise
        return jnp.ones_like(x)

    model = diffusion.edm_precondition(backbone, p, sigma_data=0.5)
    x = jnp.full((1, 3), 2.0)
    out = model(x, jnp.asarray([1.5]))
    sd, sg = 0.5, 1.5
    np.testing.assert_allclose(seen["x"], 2.0 / np.sqrt(sg ** 2 + sd ** 2), rtol=1e-6)
    np.testing.assert_allclose(seen["c"], np.log(1.5) / 4, rtol=1e-6)
    want = sd ** 2 / (sg ** 2 + sd ** 2) * 2.0 + sg * sd / np.sqrt(sg ** 2 + sd ** 2)
    np.testing.assert_allclose(out, want, rtol=1e-6)


# --- losses -----------------------------------------------------------------------------

def test_min_snr_weighting_equals_hang_et_al_per_target():
    """Hang et al. (2023): eps-loss weight min(SNR, g)/SNR, x0-loss min(SNR, g),
    v-loss min(SNR, g)/(SNR + 1) (variance preserving)."""
    p = diffusion.VPProcess()
    t = jnp.asarray([0.05, 0.3, 0.9])
    a, s = p.alpha(t), p.sigma(t)
    snr = np.asarray(a ** 2 / s ** 2)
    g = 5.0
    for pred, want in [("eps", np.minimum(snr, g) / snr), ("x0", np.minimum(snr, g)),
                       ("v", np.minimum(snr, g) / (snr + 1))]:
        got = diffusion.loss_weight("min_snr", pred, a, s, gamma=g)
        np.testing.assert_allclose(got, want, rtol=1e-4, err_msg=pred)


def test_snr_weighting_makes_every_target_the_eps_loss():
    """With 'snr' weighting the loss is the eps-MSE whatever the model predicts."""
    p = diffusion.RectifiedFlow()
    x0 = jax.random.normal(jax.random.key(0), (256, 4))
    wrong_eps = lambda x, t: jnp.zeros_like(x)   # predicts eps = 0 everywhere

    def as_pred(pred):
        def fn(x, t):
            a, s = p.alpha(t)[:, None], p.sigma(t)[:, None]
            da, ds = [v[:, None] for v in p.derivatives(t)]
            x0_hat = (x - s * wrong_eps(x, t)) / a
            return targets.target(pred, x0_hat, wrong_eps(x, t), a, s, da, ds)
        return fn

    sampler = diffusion.time_sampler(p)
    sampler_inner = lambda k: 0.05 + 0.9 * sampler(k)  # keep away from alpha = 0
    ref = diffusion.denoising_loss(as_pred("eps"), p, x0, jax.random.key(1),
                                   prediction="eps", t_sampler=sampler_inner)
    for pred in ("x0", "v", "velocity"):
        got = diffusion.denoising_loss(as_pred(pred), p, x0, jax.random.key(1), prediction=pred,
                                       weighting="snr", t_sampler=sampler_inner)
        np.testing.assert_allclose(got, ref, rtol=2e-3, err_msg=pred)


def test_time_samplers():
    rf = diffusion.RectifiedFlow()
    keys = jax.random.split(jax.random.key(0), 20000)
    u = np.asarray(jax.vmap(diffusion.time_sampler(rf, "uniform"))(keys))
    assert 0 <= u.min() and u.max() <= 1 and abs(u.mean() - 0.5) < 0.01
    ln = np.asarray(jax.vmap(diffusion.time_sampler(rf, "logit_normal", mean=0.5, std=1.0))(keys))
    logit = np.log(ln / (1 - ln))
    assert abs(logit.mean() - 0.5) < 0.03 and abs(logit.std() - 1.0) < 0.03
    sh = np.asarray(jax.vmap(diffusion.time_sampler(rf, "uniform", shift=3.0))(keys))
    np.testing.assert_allclose(np.median(sh), 3 * 0.5 / (1 + 2 * 0.5), atol=0.01)
    edm = diffusion.EDMProcess()
    sig = np.asarray(jax.vmap(diffusion.time_sampler(edm, "log_normal", mean=-1.2,
                                                    std=1.2))(keys))
    inner = np.log(sig[(sig > 0.01) & (sig < 50)])
    assert abs(np.median(np.log(sig)) + 1.2) < 0.05 and abs(inner.std() - 1.2) < 0.1
    d = diffusion.ddpm_process(num_timesteps=10)
    ints = np.asarray(jax.vmap(diffusion.time_sampler(d))(keys))
    assert ints.dtype == np.int32 and set(np.unique(ints)) == set(range(10))
    with pytest.raises(ValueError, match="continuous-time"):
        diffusion.time_sampler(d, "log_normal")
    assert diffusion.resolution_shift(128 * 128, 64 * 64) == 2.0
