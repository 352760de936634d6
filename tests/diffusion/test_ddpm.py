"""DDPM math: closed forms, exact denoisers, and the compiled sampler."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion


def gaussian_eps_denoiser(process, mu, s):
    """E[eps | x_t] when x_0 ~ N(mu, s^2 I): sigma (x_t - alpha mu) / (alpha^2 s^2 + sigma^2)."""
    def model_fn(x, t):
        a = process.alpha(t)[:, None]
        g = process.sigma(t)[:, None]
        return g * (x - a * mu) / (a ** 2 * s ** 2 + g ** 2)
    return model_fn


def test_closed_form_q_matches_iterated_forward_process():
    process = diffusion.ddpm_process(num_timesteps=1000)
    x0 = jnp.array([-1.0, -0.3, 0.0, 0.5, 1.0])
    n = 20000
    checkpoints = np.array([0, 9, 99, 499, 999])

    def one_step(x, inp):
        t, key = inp
        beta = process.betas[t]
        x = jnp.sqrt(1 - beta) * x + jnp.sqrt(beta) * jax.random.normal(key, x.shape)
        return x, x

    keys = jax.random.split(jax.random.key(0), 1000)
    x_init = jnp.broadcast_to(x0, (n, x0.size))
    _, traj = jax.jit(lambda k: jax.lax.scan(one_step, x_init, (jnp.arange(1000), k)))(keys)
    for t in checkpoints:
        xt = np.asarray(traj[t])
        mean = float(process.alpha(t)) * np.asarray(x0)
        std = float(process.sigma(t))
        # standard error of the mean is std/sqrt(n); allow 5 of them
        np.testing.assert_allclose(xt.mean(0), mean, atol=5 * std / np.sqrt(n) + 1e-6)
        np.testing.assert_allclose(xt.std(0), std, rtol=0.03, atol=1e-4)
        # and q_sample with the same marginal: compare its moments too
        z = jax.random.normal(jax.random.key(t), (n, x0.size))
        closed = np.asarray(diffusion.q_sample(process, x_init, jnp.full((n,), t), z))
        np.testing.assert_allclose(closed.std(0), xt.std(0), rtol=0.05, atol=1e-4)


def test_alpha_sigma_are_variance_preserving():
    process = diffusion.ddpm_process()
    t = jnp.arange(1000)
    np.testing.assert_allclose(process.alpha(t) ** 2 + process.sigma(t) ** 2, 1.0, atol=1e-6)
    # alpha decreases monotonically from ~1 to ~0 for the linear schedule
    a = np.asarray(process.alpha(t))
    assert np.all(np.diff(a) < 0) and a[0] > 0.99 and a[-1] < 0.01


def test_posterior_variance_is_product_of_gaussians():
    """beta-tilde equals the variance of q(x_{t-1} | x_t, x_0) by brute force:
    prior N(sqrt(abar_{t-1}) x0, 1-abar_{t-1}) times likelihood N(x_t; sqrt(alpha_t) x_{t-1}, beta_t)."""
    process = diffusion.ddpm_process()
    bt = np.asarray(process.posterior_variance("beta_tilde"), np.float64)
    betas = np.asarray(process.betas, np.float64)
    abar = np.cumprod(1 - betas)
    for t in (1, 10, 500, 999):
        prior_var = 1 - abar[t - 1]
        lik_precision = (1 - betas[t]) / betas[t]  # precision of x_{t-1} from the likelihood
        brute = 1.0 / (1.0 / prior_var + lik_precision)
        np.testing.assert_allclose(bt[t], brute, rtol=1e-4)
    assert bt[0] == 0.0


def test_denoising_loss_of_exact_denoiser_matches_closed_form():
    process = diffusion.ddpm_process(num_timesteps=50)
    s, d, n = 0.5, 16, 4096
    x0 = s * jax.random.normal(jax.random.key(1), (n, d))
    loss = diffusion.denoising_loss(gaussian_eps_denoiser(process, 0.0, s), process, x0,
                                    jax.random.key(2))
    assert loss.shape == (n,)
    t = np.arange(50)
    a2 = np.asarray(process.alpha(t)) ** 2
    g2 = np.asarray(process.sigma(t)) ** 2
    expected = np.mean(a2 * s ** 2 / (a2 * s ** 2 + g2))  # E_t Var(eps | x_t)
    np.testing.assert_allclose(float(loss.mean()), expected, rtol=0.03)
    # a wrong model (predicting zero) must score worse: the loss discriminates
    worse = diffusion.denoising_loss(lambda x, t: jnp.zeros_like(x), process, x0, jax.random.key(2))
    assert float(worse.mean()) > 1.2 * expected


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ancestral_sampler_reproduces_gaussian_data_with_exact_denoiser(variance):
    process = diffusion.ddpm_process()
    mu, s = 0.7, 0.3
    n, d = 2000, 4
    x_T = diffusion.initial_noise(jax.random.key(3), (n, d))
    x0 = jax.jit(lambda x, k: diffusion.ddpm_sample(
        gaussian_eps_denoiser(process, mu, s), process, x, k, variance=variance))(
            x_T, jax.random.key(4))
    x0 = np.asarray(x0)
    np.testing.assert_allclose(x0.mean(), mu, atol=0.02)
    np.testing.assert_allclose(x0.std(), s, rtol=0.05)


def test_algorithm2_equals_posterior_mean_form():
    """Without clipping, Ho et al.'s Algorithm 2 and mu~(x_t, x0_hat) are the same step."""
    process = diffusion.ddpm_process(num_timesteps=100)
    model = gaussian_eps_denoiser(process, 0.2, 0.5)
    x_T = diffusion.initial_noise(jax.random.key(5), (64, 3))
    a = diffusion.ddpm_sample(model, process, x_T, jax.random.key(6))
    b = diffusion.ddpm_sample(model, process, x_T, jax.random.key(6), clip_x0=1e6)
    np.testing.assert_allclose(a, b, atol=1e-4)
    c = diffusion.ddpm_sample(model, process, x_T, jax.random.key(7))
    assert np.max(np.abs(np.asarray(a) - np.asarray(c))) > 1e-2  # the key matters


def test_sample_noise_does_not_depend_on_batch_size():
    process = diffusion.ddpm_process(num_timesteps=30)
    model = gaussian_eps_denoiser(process, 0.0, 1.0)
    big = diffusion.initial_noise(jax.random.key(8), (8, 5))
    small = diffusion.initial_noise(jax.random.key(8), (3, 5))
    np.testing.assert_array_equal(big[:3], small)
    out_big = diffusion.ddpm_sample(model, process, big, jax.random.key(9))
    out_small = diffusion.ddpm_sample(model, process, small, jax.random.key(9))
    np.testing.assert_allclose(out_big[:3], out_small, atol=1e-6)


def test_sampler_scan_compiles_once():
    process = diffusion.ddpm_process(num_timesteps=1000)
    traces = []

    def model_fn(x, t):
        traces.append(1)  # runs at trace time only
        return 0.1 * x

    fn = jax.jit(lambda x, k: diffusion.sample(model_fn, process, x, k, method="ddpm"))
    x = jnp.ones((2, 4, 4, 1))
    fn(x, jax.random.key(0)).block_until_ready()
    fn(x + 1, jax.random.key(1)).block_until_ready()
    assert len(traces) == 1, "model_fn traced more than once: the sampler is not one scan"
    assert fn._cache_size() == 1


def test_trajectory_and_bad_inputs():
    process = diffusion.ddpm_process(num_timesteps=10)
    x0, traj = diffusion.ddpm_sample(lambda x, t: x * 0, process, jnp.ones((2, 3)),
                                     jax.random.key(0), return_trajectory=True)
    assert traj.shape == (10, 2, 3)
    np.testing.assert_array_equal(traj[-1], x0)
    with pytest.raises(ValueError, match="prediction must be one of"):
        diffusion.ddpm_sample(lambda x, t: x, process, jnp.ones((2, 3)), jax.random.key(0),
                              prediction="noise")
    with pytest.raises(ValueError, match="method must be one of"):
        diffusion.sample(lambda x, t: x, process, jnp.ones((2, 3)), jax.random.key(0),
                         method="euler2")
    with pytest.raises(ValueError, match="float"):
        diffusion.denoising_loss(lambda x, t: x, process, jnp.ones((2, 3), jnp.int32),
                                 jax.random.key(0))
    with pytest.raises(ValueError, match="num_timesteps"):
        diffusion.ddpm_process(num_timesteps=0)
