"""The DDPM variational bound: closed forms against brute force, and the bound against the
exact NLL of Gaussian data with the exact denoiser."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from jaxgen.diffusion import likelihood, schedules

MU, S, D = 0.3, 0.5, 64  # Gaussian data x_0 ~ N(MU, S^2 I_D)


def gaussian_eps_denoiser(process, mu, s):
    """E[eps | x_t] for x_0 ~ N(mu, s^2 I): sigma (x_t - alpha mu) / (alpha^2 s^2 + sigma^2)."""
    def model_fn(x, t):
        a = process.alpha(t)[:, None]
        g = process.sigma(t)[:, None]
        return g * (x - a * mu) / (a ** 2 * s ** 2 + g ** 2)
    return model_fn


def process_arrays(process):
    """float64 copies of beta_t, abar_t, 1 - abar_t and their 'previous' versions."""
    betas = np.asarray(process.betas, np.float64)
    abar = np.asarray(process.alpha_bars, np.float64)
    one_m_abar = np.asarray(process.one_minus_alpha_bars, np.float64)
    abar_prev = np.append(1.0, abar[:-1])
    one_m_abar_prev = np.append(0.0, one_m_abar[:-1])
    return betas, abar, one_m_abar, abar_prev, one_m_abar_prev


def true_reverse_variance(process, s):
    """Var[x_{t-1} | x_t] of Gaussian data, per index; index 0 is Var[x_0 | x_1].

    x_{t-1} | x_t mixes q(x_{t-1} | x_t, x_0) over x_0 | x_t, so its variance is
    beta-tilde_t + coef_x0^2 Var[x_0 | x_t] (law of total variance), where
    Var[x_0 | x_t] = s^2 sigma^2 / (alpha^2 s^2 + sigma^2).
    """
    betas, abar, one_m_abar, abar_prev, one_m_abar_prev = process_arrays(process)
    var_x0 = s ** 2 * one_m_abar / (abar * s ** 2 + one_m_abar)
    beta_tilde = one_m_abar_prev / one_m_abar * betas
    coef_x0 = np.sqrt(abar_prev) * betas / one_m_abar
    return np.where(np.arange(betas.size) == 0, var_x0, beta_tilde + coef_x0 ** 2 * var_x0)


def kl_variance_only(v_true, v_model):
    """KL(N(m, v_true) || N(m, v_model)) per dimension."""
    r = v_true / v_model
    return 0.5 * (r - 1.0 - np.log(r))


# ------------------------------------------------------------------------------------------
# Elementwise densities.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m1,v1,m2,v2", [(0.3, 0.5, -0.2, 1.3), (1.0, 1.0, 0.0, 1.0),
                                         (0.0, 2.0, 0.5, 0.1), (0.0, 1e-4, 0.01, 1.2e-4)])
def test_normal_kl_matches_monte_carlo(m1, v1, m2, v2):
    kl = float(likelihood.normal_kl(jnp.float32(m1), jnp.float32(math.log(v1)),
                                    jnp.float32(m2), jnp.float32(math.log(v2))))
    x = m1 + math.sqrt(v1) * np.random.default_rng(0).standard_normal(1_000_000)
    log_ratio = stats.norm.logpdf(x, m1, math.sqrt(v1)) - stats.norm.logpdf(x, m2, math.sqrt(v2))
    se = log_ratio.std() / math.sqrt(x.size)
    assert abs(kl - log_ratio.mean()) < 5 * se + 1e-5 * abs(kl), (kl, log_ratio.mean(), se)


def test_normal_kl_keeps_digits_for_nearly_equal_variances():
    # At large t, beta-tilde_t / beta_t = 1 - 1e-6; the KL is d^2 / 4 ~ 2.5e-13, which
    # exp(d) - 1 - d in float32 rounds to garbage of order 1e-7.
    d = 1e-6
    kl = float(likelihood.normal_kl(0.0, jnp.float32(-4.0 + d), 0.0, jnp.float32(-4.0)))
    assert abs(kl) < 1e-10


def test_gaussian_log_likelihood_matches_scipy():
    x = jnp.array([-1.0, 0.0, 0.3, 2.0])
    mean = jnp.array([0.0, 0.5, 0.3, -1.0])
    logvar = jnp.array([0.0, -4.0, math.log(0.25), 1.0])
    expected = stats.norm.logpdf(np.asarray(x), np.asarray(mean), np.exp(0.5 * np.asarray(logvar)))
    np.testing.assert_allclose(likelihood.gaussian_log_likelihood(x, mean, logvar), expected,
                               rtol=1e-5)


GRID = -1.0 + 2.0 * np.arange(256) / 255.0
# one compile per input shape, shared by the tests below
discretized = jax.jit(likelihood.discretized_gaussian_log_likelihood)


@pytest.mark.parametrize("mean,scale", [(0.0, 0.5), (0.37, 0.01), (-0.99, 1e-4), (1.6, 0.3),
                                        (0.0, 20.0), (0.2, 0.002), (-3.0, 0.05)])
def test_discretized_probabilities_sum_to_one(mean, scale):
    logp = discretized(
        jnp.asarray(GRID, jnp.float32), jnp.float32(mean), jnp.float32(math.log(scale)))
    p = np.exp(np.asarray(logp, np.float64))
    assert np.all(np.isfinite(np.asarray(logp)))
    assert abs(p.sum() - 1.0) < 1e-5, p.sum()


@pytest.mark.parametrize("mean,scale", [(0.1, 0.3), (0.0, 0.01), (0.5, 0.02), (-0.4, 0.005),
                                        (0.9, 2.0)])
def test_discretized_matches_float64_reference(mean, scale):
    """Every bin against float64: CDF differences where they are safe, log-space tails
    (scipy's log_ndtr) where the probability is below ~1e-300."""
    x = GRID
    a = (x - 1 / 255 - mean) / scale
    b = (x + 1 / 255 - mean) / scale
    with np.errstate(divide="ignore"):
        naive = np.log(special.ndtr(b) - special.ndtr(a))
        # upper-tail form, exact in float64 where the bin lies above the mean
        upper_tail = np.log(special.ndtr(-a) - special.ndtr(-b))
    lo, hi = np.where(x > mean, -b, a), np.where(x > mean, -a, b)
    log_hi, log_lo = special.log_ndtr(hi), special.log_ndtr(lo)
    log_space = log_hi + np.log(-np.expm1(log_lo - log_hi))
    ref = np.where(x > mean, upper_tail, naive)
    ref = np.where(np.isfinite(ref), ref, log_space)
    ref[0] = special.log_ndtr(b[0])
    ref[-1] = special.log_ndtr(-a[-1])
    got = np.asarray(discretized(
        jnp.asarray(x, jnp.float32), jnp.float32(mean), jnp.float32(math.log(scale))))
    assert np.all(np.isfinite(got))
    # float32 inputs: relative error of the standardised edges ~1e-7 times |c|^2 in the log
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-4)


def test_discretized_gradients_are_finite_in_tails_and_edge_bins():
    x = jnp.asarray(GRID[[0, 1, 128, 254, 255]], jnp.float32)

    @jax.jit
    @jax.vmap
    def grads(mean, log_scale):
        return jax.grad(lambda m, s: jnp.sum(likelihood.discretized_gaussian_log_likelihood(
            x, m, s)), argnums=(0, 1))(mean, log_scale)

    means = jnp.array([0.0, 0.9, -5.0, 0.0, 0.5])
    log_scales = jnp.array([-9.0, -6.0, 0.0, 4.0, -1.0])
    g_mean, g_scale = grads(means, log_scales)
    assert np.all(np.isfinite(g_mean)) and np.all(np.isfinite(g_scale)), (g_mean, g_scale)
    assert np.all(np.abs(g_scale) > 0)


# ------------------------------------------------------------------------------------------
# Posterior and model reverse step.
# ------------------------------------------------------------------------------------------


def test_posterior_matches_brute_force_product_of_gaussians():
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0), normalised on a 1-D grid."""
    process = schedules.ddpm_process("linear", 1000)
    betas, abar, one_m_abar, abar_prev, one_m_abar_prev = process_arrays(process)
    ts = np.array([1, 10, 300, 999, 5])
    x0 = np.array([-0.7, 0.4, 0.9, -0.2, 1.0])
    x_t = np.sqrt(abar[ts]) * x0 + np.sqrt(one_m_abar[ts]) * np.array([0.8, -1.3, 0.1, 2.0, -0.5])
    mean, var, logvar = likelihood.posterior_mean_variance(
        process, jnp.asarray(x0[:, None], jnp.float32), jnp.asarray(x_t[:, None], jnp.float32),
        jnp.asarray(ts, jnp.int32))
    for i, t in enumerate(ts):
        prior_mean, prior_var = np.sqrt(abar_prev[t]) * x0[i], one_m_abar_prev[t]
        alpha_t = 1.0 - betas[t]
        lik_center, lik_var = x_t[i] / np.sqrt(alpha_t), betas[t] / alpha_t
        width = np.sqrt(min(prior_var, lik_var))  # >= the posterior std
        grid = np.linspace(min(prior_mean, lik_center) - 15 * width,
                           max(prior_mean, lik_center) + 15 * width, 400_001)
        log_density = (stats.norm.logpdf(x_t[i], np.sqrt(alpha_t) * grid, np.sqrt(betas[t]))
                       + stats.norm.logpdf(grid, prior_mean, np.sqrt(prior_var)))
        w = np.exp(log_density - log_density.max())
        w /= w.sum()
        bf_mean = np.sum(w * grid)
        bf_var = np.sum(w * (grid - bf_mean) ** 2)
        np.testing.assert_allclose(float(mean[i, 0]), bf_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(float(var[i, 0]), bf_var, rtol=1e-4)
        np.testing.assert_allclose(float(logvar[i, 0]), np.log(bf_var), atol=1e-4)


def test_posterior_at_first_step_is_x0_with_clipped_log_variance():
    process = schedules.ddpm_process("linear", 1000)
    x0 = jnp.array([[0.25, -0.5]])
    x_t = jnp.array([[0.3, -0.45]])
    t = jnp.zeros((1,), jnp.int32)
    mean, var, logvar = likelihood.posterior_mean_variance(process, x0, x_t, t)
    np.testing.assert_allclose(mean, x0, rtol=1e-6)
    assert float(var[0, 0]) == 0.0
    betas, _, one_m_abar, _, one_m_abar_prev = process_arrays(process)
    np.testing.assert_allclose(float(logvar[0, 0]),
                               np.log(one_m_abar_prev[1] / one_m_abar[1] * betas[1]), rtol=1e-5)


def test_model_mean_equals_algorithm2_for_every_prediction_type():
    """Ho et al. Eq. 11: mu = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t); the
    x0 and v predictions that encode the same x_0 estimate give the same mean."""
    process = schedules.ddpm_process("linear", 1000)
    rng = np.random.default_rng(1)
    t = jnp.array([0, 1, 57, 500, 999], jnp.int32)
    x_t = jnp.asarray(rng.standard_normal((5, 3)), jnp.float32)
    eps = jnp.asarray(rng.standard_normal((5, 3)), jnp.float32)
    betas, abar, one_m_abar, _, _ = process_arrays(process)
    tn = np.asarray(t)
    expected = (np.asarray(x_t, np.float64) - (betas[tn] / np.sqrt(one_m_abar[tn]))[:, None]
                * np.asarray(eps, np.float64)) / np.sqrt(1 - betas[tn])[:, None]
    alpha = process.alpha(t)[:, None]
    sigma = process.sigma(t)[:, None]
    x0_hat = (x_t - sigma * eps) / alpha
    preds = {"eps": eps, "x0": x0_hat, "v": alpha * eps - sigma * x0_hat}
    for prediction, pred in preds.items():
        mean, _, _ = likelihood.model_mean_variance(process, pred, x_t, t, prediction, "beta")
        np.testing.assert_allclose(mean, expected, rtol=1e-4, atol=1e-4, err_msg=prediction)


def test_learned_range_interpolates_log_variance_between_beta_tilde_and_beta():
    process = schedules.ddpm_process("linear", 1000)
    betas, _, one_m_abar, _, one_m_abar_prev = process_arrays(process)
    beta_tilde = one_m_abar_prev / one_m_abar * betas
    log_min = np.log(np.append(beta_tilde[1], beta_tilde[1:]))
    log_max = np.log(betas)
    t = jnp.array([0, 3, 400], jnp.int32)
    x_t = jnp.ones((3, 2))
    for v, frac in [(-1.0, 0.0), (0.0, 0.5), (1.0, 1.0), (0.5, 0.75)]:
        out = jnp.concatenate([jnp.zeros((3, 2)), jnp.full((3, 2), v)], axis=-1)
        _, var, logvar = likelihood.model_mean_variance(process, out, x_t, t, "eps",
                                                        "learned_range")
        expected = frac * log_max[np.asarray(t)] + (1 - frac) * log_min[np.asarray(t)]
        np.testing.assert_allclose(logvar[:, 0], expected, rtol=1e-5)
        np.testing.assert_allclose(var[:, 1], np.exp(expected), rtol=1e-4)
    _, _, logvar_small = likelihood.model_mean_variance(process, out[:, :2], x_t, t, "eps",
                                                        "beta_tilde")
    np.testing.assert_allclose(logvar_small[:, 0], log_min[np.asarray(t)], rtol=1e-5)


# ------------------------------------------------------------------------------------------
# The bound.
# ------------------------------------------------------------------------------------------


def test_vlb_terms_mix_steps_in_one_batch():
    process = schedules.ddpm_process("linear", 50, beta_start=1e-3, beta_end=0.2)
    model_fn = gaussian_eps_denoiser(process, MU, S)
    rng = np.random.default_rng(2)
    x0 = jnp.asarray(MU + S * rng.standard_normal((4, 8)), jnp.float32)
    noise = jnp.asarray(rng.standard_normal((4, 8)), jnp.float32)
    t = jnp.array([0, 3, 49, 0], jnp.int32)
    terms = jax.jit(lambda x, tt, z: likelihood.vlb_terms(model_fn, process, x, tt, z,
                                                          variance="beta", decoder="gaussian"))
    mixed = terms(x0, t, noise)
    for i in range(4):
        alone = terms(x0[i:i + 1], t[i:i + 1], noise[i:i + 1])
        np.testing.assert_allclose(mixed[i], alone[0], rtol=1e-6)
    # index 0 is the decoder NLL: -log N(x_0; x0_hat, beta_1) with x0_hat from x_1
    x1 = process.alpha(0) * x0[0] + process.sigma(0) * noise[0]
    x0_hat = (x1 - process.sigma(0) * model_fn(x1[None], t[:1])[0]) / process.alpha(0)
    nll = -np.sum(stats.norm.logpdf(np.asarray(x0[0]), np.asarray(x0_hat),
                                    math.sqrt(float(process.betas[0]))))
    np.testing.assert_allclose(float(mixed[0]), nll, rtol=1e-4)


def test_bound_of_exact_denoiser_on_gaussian_data_matches_the_exact_nll():
    """The key check: the bound against -log N(x_0; MU, S^2 I), example by example.

    With x_0 ~ N(MU, S^2 I_64) and the exact denoiser the model's reverse means are the true
    ones, so the expected gap E[bound] - E[NLL] is KL(q(x_T) || N(0, I)) plus
    sum_t D KL(N(m, v_true_t) || N(m, v_model_t)): only the variances differ (see
    ``true_reverse_variance``). For T = 1000 linear (NLL ~46.5 nats):
      'exact' (learned_range with v solving Eq. 15 for v_true): ~1e-4 nats,
      'beta': ~0.07 nats (beta_t ~ v_true_t: the data variance is >> beta_t),
      'beta_tilde': ~36.5 nats (it drops the coef^2 Var[x_0 | x_t] term).
    Tolerances. The bound is a one-draw-per-step Monte Carlo estimate whose per-example
    std is ~8 nats (the decoder alone is chi^2_64 / 2), so the 'exact' bound is checked
    against the NLL within 4 standard errors of the batch mean (~1 nat at 1024 examples)
    + 0.05 nats of float32 slack. The same x_0 and noise are used for all three variances,
    so the differences bound_v - bound_exact are far less noisy (SE ~6e-4 nats for
    'beta', ~0.2 for 'beta_tilde') and are checked against the analytic variance gaps
    within 4 of their standard errors + 2e-3 nats (float32 sums over 1000 steps).
    """
    process = schedules.ddpm_process("linear", 1000)
    eps_fn = gaussian_eps_denoiser(process, MU, S)
    betas, abar, one_m_abar, _, one_m_abar_prev = process_arrays(process)
    v_true = true_reverse_variance(process, S)
    beta_tilde = one_m_abar_prev / one_m_abar * betas
    beta_tilde_clipped = np.append(beta_tilde[1], beta_tilde[1:])
    # v_true lies in [beta-tilde_t, beta_t] for data with s <= 1; solve Eq. 15 for v.
    frac = ((np.log(v_true) - np.log(beta_tilde_clipped))
            / (np.log(betas) - np.log(beta_tilde_clipped)))
    assert np.all((frac >= -1e-6) & (frac <= 1 + 1e-6))
    v_table = jnp.asarray(2 * frac - 1, jnp.float32)

    def exact_fn(x, t):
        return jnp.concatenate([eps_fn(x, t), jnp.broadcast_to(v_table[t][:, None], x.shape)],
                               axis=-1)

    batch = 1024
    x0 = MU + S * jax.random.normal(jax.random.key(10), (batch, D))
    nll = -np.sum(stats.norm.logpdf(np.asarray(x0, np.float64), MU, S), axis=1)
    bounds = {}
    for name, model_fn, kind in [("exact", exact_fn, "learned_range"),
                                 ("beta", eps_fn, "beta"), ("beta_tilde", eps_fn, "beta_tilde")]:
        out = jax.jit(lambda x, k: likelihood.variational_bound(
            model_fn, process, x, k, variance=kind, decoder="gaussian",
            bits_per_dim=False))(x0, jax.random.key(11))
        np.testing.assert_allclose(out["prior"] + out["decoder"] + out["diffusion"],
                                   out["total"], rtol=1e-6)
        bounds[name] = np.asarray(out["total"], np.float64)

    var_T = abar[-1] * S ** 2 + one_m_abar[-1]
    prior = D * 0.5 * (var_T + abar[-1] * MU ** 2 - 1 - np.log(var_T))

    def se(v):
        return v.std(ddof=1) / math.sqrt(v.size)

    gap = bounds["exact"] - nll
    print(f"exact: bound - NLL = {gap.mean():.3f} +- {se(gap):.3f} nats "
          f"(expected {prior:.1e}, NLL {nll.mean():.2f})")
    assert abs(gap.mean() - prior) < 4 * se(gap) + 0.05
    for name, v_model in [("beta", betas), ("beta_tilde", beta_tilde_clipped)]:
        expected = D * np.sum(kl_variance_only(v_true, v_model))
        gap_v, paired = bounds[name] - nll, bounds[name] - bounds["exact"]
        print(f"{name}: bound - NLL = {gap_v.mean():.3f} +- {se(gap_v):.3f}; bound - exact "
              f"bound = {paired.mean():.4f} +- {se(paired):.4f} (expected {expected:.4f})")
        assert abs(paired.mean() - expected) < 4 * se(paired) + 2e-3
        assert gap_v.mean() > -4 * se(gap_v)  # a bound: never significantly below the NLL


def test_discretized_bound_is_above_the_entropy_of_quantised_data():
    """-log p(x) >= entropy for any model: the bits/dim bound on 8-bit quantised Gaussian
    data must not fall below the exact cross-entropy of the sample (a wrong bin width of a
    factor 2 would move the bound by 1 bit/dim)."""
    process = schedules.ddpm_process("linear", 100, beta_start=1e-3, beta_end=0.2)
    batch = 256
    x = MU + S * np.asarray(jax.random.normal(jax.random.key(3), (batch, D)), np.float64)
    k = np.clip(np.round((x + 1) * 127.5), 0, 255).astype(int)
    x0 = jnp.asarray(GRID[k], jnp.float32)
    edges = np.concatenate([[-np.inf], GRID[:-1] + 1 / 255, [np.inf]])
    p_bins = np.diff(stats.norm.cdf(edges, MU, S))
    cross_entropy = -np.log2(p_bins[k]).sum(axis=1) / D
    out = jax.jit(lambda x, r: likelihood.variational_bound(
        gaussian_eps_denoiser(process, MU, S), process, x, r, variance="beta",
        decoder="discretized"))(x0, jax.random.key(4))
    diff = np.asarray(out["total"], np.float64) - cross_entropy
    assert np.all(np.isfinite(np.asarray(out["terms"])))
    assert out["terms"].shape == (batch, 100)
    assert diff.mean() > -4 * diff.std(ddof=1) / math.sqrt(batch)
    assert diff.mean() < 1.0  # bits/dim: the bound is not wildly loose either


def test_bound_of_an_example_does_not_depend_on_the_batch():
    process = schedules.ddpm_process("linear", 20, beta_start=1e-3, beta_end=0.3)
    model_fn = gaussian_eps_denoiser(process, MU, S)
    x0 = MU + S * jax.random.normal(jax.random.key(5), (5, 8))

    @jax.jit
    def total(x):
        return likelihood.variational_bound(model_fn, process, x, jax.random.key(6),
                                            variance="beta_tilde", decoder="gaussian")["total"]

    np.testing.assert_allclose(total(x0[:3]), total(x0)[:3], rtol=1e-6)
    # the noise is keyed by position, not content: reversing the batch changes each value
    assert not np.allclose(total(x0[::-1])[::-1], total(x0))


# ------------------------------------------------------------------------------------------
# Hybrid loss.
# ------------------------------------------------------------------------------------------


def affine_model(params):
    """Output (B, 2D): mean half a * x_t, variance half b (a constant v)."""
    def model_fn(x, t):
        return jnp.concatenate([params["a"] * x, jnp.broadcast_to(params["b"], x.shape)], -1)
    return model_fn


def test_hybrid_vlb_trains_only_the_variance():
    process = schedules.ddpm_process("linear", 100, beta_start=1e-3, beta_end=0.2)
    x0 = MU + S * jax.random.normal(jax.random.key(7), (16, D))
    params = {"a": jnp.float32(0.3), "b": jnp.float32(0.2)}

    t = jnp.arange(16, dtype=jnp.int32) * 6
    noise = jax.random.normal(jax.random.key(9), x0.shape)

    def loss(p, lam):
        return jnp.mean(likelihood.hybrid_loss(affine_model(p), process, x0, jax.random.key(8),
                                               lambda_vlb=lam, decoder="gaussian"))

    def no_stop_gradient(p):
        return jnp.mean(likelihood.vlb_terms(affine_model(p), process, x0, t, noise,
                                             variance="learned_range", decoder="gaussian"))

    @jax.jit
    def grads(p):
        return (jax.grad(lambda q: loss(q, 1.0) - loss(q, 0.0))(p),  # the L_vlb part
                jax.grad(loss)(p, 0.0),  # L_simple alone
                jax.grad(no_stop_gradient)(p))  # control: the same term, gradient free

    g_vlb, g_simple, g_free = grads(params)
    print({k: {n: float(v) for n, v in g.items()} for k, g in
           [("vlb", g_vlb), ("simple", g_simple), ("free", g_free)]})
    # zero up to the rounding of subtracting two equal L_simple gradients
    assert abs(float(g_vlb["a"])) <= 1e-6 * abs(float(g_simple["a"]))
    assert abs(float(g_vlb["b"])) > 1e-3
    assert float(g_simple["b"]) == 0.0 and abs(float(g_simple["a"])) > 1e-3
    assert abs(float(g_free["a"])) > 1e-3  # so the first assertion could have failed


def test_hybrid_loss_value_is_simple_plus_scaled_vlb():
    """L = mean (eps_hat - eps)^2 + lambda T L_t / (D ln 2), on the (x_t, t) it drew."""
    process = schedules.ddpm_process("linear", 10, beta_start=1e-2, beta_end=0.2)
    x0 = MU + S * jax.random.normal(jax.random.key(11), (6, D))
    params = {"a": jnp.float32(0.4), "b": jnp.float32(-0.3)}
    seen = []

    def model_fn(x, t):
        # records the (x_t, t) the loss drew, from inside the compiled function
        jax.debug.callback(lambda *a: seen.append([np.asarray(v) for v in a]), x, t)
        return affine_model(params)(x, t)

    lam = 0.02
    loss = np.asarray(jax.jit(lambda x: likelihood.hybrid_loss(
        model_fn, process, x, jax.random.key(12), lambda_vlb=lam, decoder="gaussian"))(x0))
    (x_t, t), = seen
    assert len(set(t.tolist())) > 1
    alpha = np.asarray(process.alpha(t))[:, None]
    sigma = np.asarray(process.sigma(t))[:, None]
    noise = (x_t - alpha * np.asarray(x0)) / sigma
    mse = np.mean((0.4 * x_t - noise) ** 2, axis=1)
    vlb = jax.jit(lambda *a: likelihood.vlb_terms(
        affine_model(params), process, *a, variance="learned_range", decoder="gaussian"))(
            x0, jnp.asarray(t), jnp.asarray(noise, jnp.float32))
    expected = mse + lam * 10 * np.asarray(vlb) / (D * math.log(2))
    np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------
# Input checks.
# ------------------------------------------------------------------------------------------


def test_bad_inputs_raise_value_errors_that_say_what_was_expected():
    # Under jit the checks raise while tracing, before anything is compiled.
    process = schedules.ddpm_process("linear", 10)
    model_fn = gaussian_eps_denoiser(process, MU, S)
    x0 = jnp.zeros((2, 4))
    noise = jnp.zeros((2, 4))
    t = jnp.zeros((2,), jnp.int32)

    def terms(x, tt, **kw):
        kw.setdefault("variance", "beta")
        return jax.jit(lambda a, b: likelihood.vlb_terms(model_fn, process, a, b, noise,
                                                         **kw))(x, tt)

    with pytest.raises(ValueError, match="float"):
        terms(x0.astype(jnp.int32), t)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        terms(x0, t[:1])
    with pytest.raises(ValueError, match="integer"):
        terms(x0, t.astype(jnp.float32))
    with pytest.raises(ValueError, match=r"twice the channels.*\(2, 8\)"):
        terms(x0, t, variance="learned_range")
    with pytest.raises(ValueError, match="variance must be one of"):
        terms(x0, t, variance="fixed")
    with pytest.raises(ValueError, match="decoder must be one of"):
        terms(x0, t, decoder="bern")
    with pytest.raises(ValueError, match="num_timesteps >= 2"):
        jax.jit(lambda x: likelihood.variational_bound(
            model_fn, schedules.ddpm_process("linear", 1), x, jax.random.key(0),
            variance="beta"))(x0)
    with pytest.raises(ValueError, match="twice the channels"):
        jax.jit(lambda x: likelihood.hybrid_loss(model_fn, process, x, jax.random.key(0)))(x0)
