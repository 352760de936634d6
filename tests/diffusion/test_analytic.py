"""Exact denoisers for Gaussian mixtures, checked against quadrature and autodiff.

Every reference here is computed independently of jaxgen.diffusion.analytic: a float64
numpy density and brute-force numerical integration of p(x_0) N(x_t; alpha x_0, sigma^2 I)
over a grid, or jax.grad of a log density.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion import RectifiedFlow, VPProcess, analytic, ddpm_process

# Unequal weights and widths. SPIKE has one component much narrower than the others, so
# that wrong responsibilities or a wrong per-component gain change the answer at tiny sigma.
W = np.array([0.5, 0.3, 0.2])
MU = np.array([[-1.0, 0.5], [1.0, 1.0], [0.3, -1.2]])
BROAD = np.array([0.3, 0.5, 0.4])
SPIKE = np.array([0.3, 2e-3, 0.4])


def mixture(stds):
    return analytic.GaussianMixture(weights=jnp.asarray(W, jnp.float32),
                                    means=jnp.asarray(MU, jnp.float32),
                                    stds=jnp.asarray(stds, jnp.float32))


def np_log_prior(x0, stds):
    """float64 log sum_k w_k N(x0; mu_k, s_k^2 I) for x0 (P, 2)."""
    sq = ((x0[:, None, :] - MU[None]) ** 2).sum(-1)
    logn = np.log(W) - 0.5 * sq / stds ** 2 - np.log(2 * np.pi * stds ** 2)
    top = logn.max(1, keepdims=True)
    return top[:, 0] + np.log(np.exp(logn - top).sum(1))


def quadrature_posterior_mean(x_t, alpha, sigma, stds, lo, hi, num):
    """E[x_0 | x_t] = int x0 p(x0) N(x_t; alpha x0, sigma^2 I) dx0 / int p(x0) N(...) dx0,
    by a Riemann sum on a num x num grid over the box [lo, hi] (spectrally accurate for a
    smooth integrand that is negligible at the box edges)."""
    g0 = np.linspace(lo[0], hi[0], num)
    g1 = np.linspace(lo[1], hi[1], num)
    grid = np.stack(np.meshgrid(g0, g1, indexing="ij"), -1).reshape(-1, 2)
    logw = np_log_prior(grid, stds) - 0.5 * ((x_t - alpha * grid) ** 2).sum(-1) / sigma ** 2
    w = np.exp(logw - logw.max())
    return (w[:, None] * grid).sum(0) / w.sum()


def test_single_gaussian_equals_closed_form_posterior():
    mu = np.array([0.4, -1.0, 2.0])
    s = 0.7
    g = analytic.gaussian(3, mean=mu, std=s)
    x_t = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    alpha = np.array([1.0, 0.9, 0.5, 0.1, 0.0])
    sigma = np.array([1e-3, 0.3, 0.8, 1.0, 1.0])
    got = np.asarray(analytic.posterior_mean_x0(g, x_t, alpha, sigma))
    gain = alpha * s ** 2 / (alpha ** 2 * s ** 2 + sigma ** 2)
    want = mu + gain[:, None] * (x_t - alpha[:, None] * mu)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alpha,sigma", [(0.9, 0.4), (0.5, 0.8), (0.99, 0.1)])
def test_mixture_posterior_mean_matches_numerical_integration(alpha, sigma):
    mix = mixture(BROAD)
    rng = np.random.default_rng(1)
    x0 = np.asarray(mix.sample(jax.random.key(1), 3))
    x_t = np.concatenate([alpha * x0 + sigma * rng.normal(size=x0.shape),
                          [[3.0, -3.0]]])  # and a point far from every component
    got = np.asarray(analytic.posterior_mean_x0(mix, x_t.astype(np.float32), alpha, sigma))
    for i, xt in enumerate(x_t):
        # Grid step 0.0167 resolves both the prior (stds >= 0.3) and the likelihood
        # (width sigma / alpha >= 0.1); the box holds all the prior mass.
        want = quadrature_posterior_mean(xt, alpha, sigma, BROAD, (-5, -5), (5, 5), 601)
        np.testing.assert_allclose(got[i], want, atol=1e-5, err_msg=f"x_t={xt}")


@pytest.mark.parametrize("alpha", [1.0, 0.999, 0.7])
def test_tiny_sigma_matches_local_numerical_integration(alpha):
    sigma = 1e-3
    mix = mixture(SPIKE)
    x0 = np.array([[1.0005, 0.9990],     # inside the narrow spike's reach
                   [-0.9, 0.6],           # broad component
                   [1.02, 1.0]])          # between the spike and the broad tail
    x_t = alpha * x0 + sigma * np.random.default_rng(2).normal(size=x0.shape)
    got = np.asarray(analytic.posterior_mean_x0(mix, x_t.astype(np.float32), alpha, sigma))
    assert np.all(np.isfinite(got))
    for i, xt in enumerate(x_t):
        # The likelihood confines x_0 to within ~10 sigma/alpha of x_t/alpha; a grid there
        # resolves both the likelihood and the 2e-3 spike.
        half = 10 * sigma / alpha
        want = quadrature_posterior_mean(xt, alpha, sigma, SPIKE, xt / alpha - half,
                                         xt / alpha + half, 401)
        np.testing.assert_allclose(got[i], want, atol=3e-6, err_msg=f"x_t={xt}")


@pytest.mark.parametrize("sigma", [1.0, 1e-3])
def test_pure_noise_returns_mixture_mean(sigma):
    mix = mixture(SPIKE)
    x_t = np.array([[0.0, 0.0], [3.0, -2.0], [-40.0, 25.0]], np.float32)
    got = np.asarray(analytic.posterior_mean_x0(mix, x_t, 0.0, sigma))
    np.testing.assert_allclose(got, np.broadcast_to(W @ MU, got.shape), atol=1e-6)


def test_predictions_are_mutually_consistent_and_score_is_grad_log_density():
    mix = analytic.toy_mixture_2d("ring8")
    process = ddpm_process(num_timesteps=1000)
    t_values = np.array([0, 10, 100, 400, 999])
    x0 = mix.sample(jax.random.key(3), t_values.size * 4)
    t = jnp.asarray(np.repeat(t_values, 4), jnp.int32)
    a = process.alpha(t)[:, None]
    g = process.sigma(t)[:, None]
    x_t = a * x0 + g * jax.random.normal(jax.random.key(4), x0.shape)
    pred = {p: np.asarray(jax.jit(analytic.exact_denoiser(mix, process, p))(x_t, t))
            for p in analytic.DENOISER_PREDICTIONS if p != "velocity"}  # DDPM: no d/dt
    a, g, x_t = np.asarray(a, np.float64), np.asarray(g, np.float64), np.asarray(x_t)
    np.testing.assert_allclose(a * pred["x0"] + g * pred["eps"], x_t, atol=2e-5)
    np.testing.assert_allclose(pred["v"], a * pred["eps"] - g * pred["x0"], atol=2e-5)
    np.testing.assert_allclose(pred["score"], -pred["eps"] / g, rtol=1e-4, atol=1e-4)
    # Independent check: the score is the gradient of log p_t, the density of the noised
    # mixture, differentiated by autodiff rather than derived by hand.
    score_fn = jax.jit(jax.vmap(jax.grad(lambda m, x: m.log_prob(x[None])[0], argnums=1),
                                in_axes=(None, 0)))
    for i, tv in enumerate(t_values):
        rows = slice(4 * i, 4 * i + 4)
        grad = score_fn(mix.at(process.alpha(tv), process.sigma(tv)), x_t[rows])
        np.testing.assert_allclose(pred["score"][rows], grad, rtol=1e-4,
                                   atol=1e-4 * np.abs(grad).max(), err_msg=f"t={tv}")


@pytest.mark.parametrize("process", [RectifiedFlow(), VPProcess()],
                         ids=lambda p: type(p).__name__)
def test_velocity_is_the_time_derivative_combination_of_x0_and_eps(process):
    """E[dx_t/dt | x_t] = alpha'(t) E[x_0|x_t] + sigma'(t) E[z|x_t], with alpha', sigma'
    taken here by central finite differences of alpha and sigma (not by the process's
    autodiff derivatives, which the denoiser uses)."""
    mix = analytic.toy_mixture_2d("ring8")
    t_values = np.array([0.05, 0.3, 0.6, 0.95], np.float32)
    t = jnp.asarray(np.repeat(t_values, 4))
    x0 = mix.sample(jax.random.key(5), t.shape[0])
    a, g = process.alpha(t)[:, None], process.sigma(t)[:, None]
    x_t = a * x0 + g * jax.random.normal(jax.random.key(6), x0.shape)
    models = {p: analytic.exact_denoiser(mix, process, p) for p in ("x0", "eps", "velocity")}
    pred = {p: np.asarray(v, np.float64) for p, v in
            jax.jit(lambda x, t: {p: m(x, t) for p, m in models.items()})(x_t, t).items()}
    h = 1e-3
    tt = np.asarray(t, np.float64)
    fd = lambda f: ((np.asarray(f(jnp.asarray(tt + h, jnp.float32)), np.float64)
                     - np.asarray(f(jnp.asarray(tt - h, jnp.float32)), np.float64))
                    / (2 * h))[:, None]
    want = fd(process.alpha) * pred["x0"] + fd(process.sigma) * pred["eps"]
    np.testing.assert_allclose(pred["velocity"], want, rtol=2e-3, atol=2e-3)
    if isinstance(process, RectifiedFlow):  # velocity = z - x_0 (the lectures)
        np.testing.assert_allclose(pred["velocity"], pred["eps"] - pred["x0"], atol=1e-5)


def test_log_prob_is_normalised_and_matches_numpy_density():
    mix = analytic.GaussianMixture(weights=jnp.array([2.0, 1.0, 1.0]),  # unnormalised
                                   means=jnp.asarray(MU, jnp.float32),
                                   stds=jnp.asarray(BROAD, jnp.float32))
    g = np.linspace(-5.0, 5.0, 401)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dens = np.exp(np.asarray(mix.log_prob(grid.astype(np.float32)), np.float64))
    assert abs(dens.sum() * (g[1] - g[0]) ** 2 - 1.0) < 1e-4
    w = np.array([0.5, 0.25, 0.25])
    sq = ((grid[:, None, :] - MU[None]) ** 2).sum(-1)
    ref = (w * np.exp(-0.5 * sq / BROAD ** 2) / (2 * np.pi * BROAD ** 2)).sum(1)
    np.testing.assert_allclose(dens, ref, rtol=1e-4, atol=1e-12)


def test_sample_and_noised_mixture_moments():
    mix = mixture(BROAD)
    n = 40000
    x0 = np.asarray(mix.sample(jax.random.key(5), n), np.float64)
    mean = W @ MU
    second = (W[:, None] * (MU ** 2 + BROAD[:, None] ** 2)).sum(0)
    var = second - mean ** 2
    np.testing.assert_allclose(x0.mean(0), mean, atol=5 * np.sqrt(var.max() / n))
    np.testing.assert_allclose(x0.var(0), var, rtol=0.05)
    # at(alpha, sigma) is the law of alpha x0 + sigma z.
    alpha, sigma = 0.6, 0.8
    xt = np.asarray(mix.at(alpha, sigma).sample(jax.random.key(6), n), np.float64)
    np.testing.assert_allclose(xt.mean(0), alpha * mean,
                               atol=5 * np.sqrt((alpha ** 2 * var.max() + sigma ** 2) / n))
    np.testing.assert_allclose(xt.var(0), alpha ** 2 * var + sigma ** 2, rtol=0.05)


@pytest.mark.parametrize("name", analytic.TOY_MIXTURES)
def test_toy_mixtures_have_unit_scale(name):
    mix = analytic.toy_mixture_2d(name)
    w, mu, s = (np.asarray(a, np.float64) for a in (mix.weights, mix.means, mix.stds))
    mean = w @ mu
    var = (w[:, None] * (mu ** 2 + s[:, None] ** 2)).sum(0) - mean ** 2
    np.testing.assert_allclose(mean, 0.0, atol=1e-6)
    np.testing.assert_allclose(var, 1.0, rtol=1e-5)
    assert np.abs(mu).max() < 2.0
    assert len(np.unique(np.round(mu, 4), axis=0)) == mix.num_components


def test_denoiser_is_jittable_over_mixture_and_accepts_image_shapes():
    process = ddpm_process(num_timesteps=100)
    mix = analytic.gaussian(4, mean=0.3, std=0.5)
    x_img = jax.random.normal(jax.random.key(7), (3, 2, 2, 1))
    t = jnp.array([0, 50, 99])
    out = jax.jit(lambda m, x: analytic.exact_denoiser(m, process, "eps")(x, t))(mix, x_img)
    flat = analytic.exact_denoiser(mix, process, "eps")(x_img.reshape(3, 4), t)
    assert out.shape == x_img.shape
    np.testing.assert_allclose(np.asarray(out).reshape(3, 4), flat, rtol=1e-6)


def test_invalid_inputs_raise_value_errors():
    process = ddpm_process(num_timesteps=10)
    mix = analytic.toy_mixture_2d("grid9")
    with pytest.raises(ValueError, match="'x0', 'eps', 'v', 'velocity', 'score'"):
        analytic.exact_denoiser(mix, process, "flow")
    with pytest.raises(ValueError, match="'velocity'.*continuous-time.*DDPMProcess"):
        analytic.exact_denoiser(mix, process, "velocity")
    with pytest.raises(ValueError, match="toy mixture name"):
        analytic.toy_mixture_2d("moons")
    with pytest.raises(ValueError, match=r"shape \(K,\)"):
        analytic.GaussianMixture(weights=jnp.ones(3), means=jnp.zeros((2, 2)), stds=jnp.ones(2))
    with pytest.raises(ValueError, match=r"x_t must have shape \(n, 2\)"):
        analytic.posterior_mean_x0(mix, jnp.zeros((4, 3)), 1.0, 0.5)
    with pytest.raises(ValueError, match=r"alpha must be a scalar or have shape \(4,\)"):
        analytic.posterior_mean_x0(mix, jnp.zeros((4, 2)), jnp.ones(3), 0.5)
    with pytest.raises(ValueError, match="scalar alpha and sigma"):
        mix.at(jnp.ones(2), 0.5)
