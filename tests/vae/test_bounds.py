"""The ELBO and the IWAE bound against exact log p(x) of a linear-Gaussian model.

Probabilistic PCA: z ~ N(0, I_2), x = W z + b + sigma e, so p(x) = N(b, W W^T + sigma^2 I)
and the posterior is Gaussian with covariance sigma^2 (W^T W + sigma^2 I)^-1, which is
diagonal because W's columns are orthogonal: the diagonal q of a VAE can equal it.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import vae

SIGMA = 0.5
W = np.array([[1.5, 0.0], [0.0, 0.8], [1.5, 0.0], [0.0, -0.8]], np.float32)  # W^T W diagonal
B = np.array([0.3, -0.2, 0.1, 0.5], np.float32)
X = np.array([[1.0, 0.5, -0.3, 2.0], [-2.0, 0.1, -1.5, 0.0], [0.2, -1.0, 0.4, 1.2]],
             np.float32)


def exact_log_px(x):
    cov = W.astype(np.float64) @ W.T + SIGMA ** 2 * np.eye(4)
    d = x - B
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (4 * math.log(2 * math.pi) + logdet
                   + np.einsum("bi,ij,bj->b", d, np.linalg.inv(cov), d))


def true_posterior(x):
    m = np.diag(W.T @ W) + SIGMA ** 2          # W^T W + sigma^2 I, diagonal
    mean = ((x - B) @ W) / m
    return mean.astype(np.float32), np.broadcast_to(np.log(SIGMA ** 2 / m), mean.shape)


def log_likelihood(x, z):
    return vae.gaussian_log_likelihood(x, z @ W.T + B, 2 * math.log(SIGMA))


def exact_elbo(x, mean, logvar):
    """Closed form: E_q ||x - W z - b||^2 = ||x - W mu - b||^2 + sum_j s_j^2 ||W_j||^2."""
    var = np.exp(logvar)
    sq = np.sum((x - mean @ W.T - B) ** 2, axis=1) + var @ np.sum(W ** 2, axis=0)
    rec = -2 * math.log(2 * math.pi * SIGMA ** 2) - sq / (2 * SIGMA ** 2)
    kl = 0.5 * np.sum(mean ** 2 + var - 1 - logvar, axis=1)
    return rec - kl


def mc_elbo(encode, reps=2000):
    keys = jax.random.split(jax.random.key(0), reps)
    terms = jax.jit(jax.vmap(lambda k: vae.elbo(jnp.asarray(X), k, encode, log_likelihood)))(keys)
    return terms


def test_elbo_equals_log_px_when_q_is_the_true_posterior():
    mean, logvar = true_posterior(X)
    encode = lambda x: (jnp.asarray(mean), jnp.asarray(logvar))  # noqa: E731
    log_px = exact_log_px(X)
    np.testing.assert_allclose(exact_elbo(X, mean, logvar), log_px, atol=1e-4)
    # Every importance weight is p(x): log w = log p(x) for any z, so the bound is tight
    # sample by sample, not only in expectation.
    lw = jax.jit(lambda x: vae.log_weights(vae.log_weight_fn(x, encode, log_likelihood),
                                           jax.random.key(1), 16))(jnp.asarray(X))
    np.testing.assert_allclose(lw, np.broadcast_to(log_px, lw.shape), atol=2e-4)
    terms = mc_elbo(encode)
    np.testing.assert_allclose(terms.elbo.mean(0), log_px, atol=0.05)
    np.testing.assert_allclose(terms.elbo, terms.reconstruction - terms.kl, atol=1e-5)


@pytest.mark.parametrize("shift, scale", [(0.5, 1.0), (0.0, 3.0), (-0.7, 0.3)])
def test_elbo_never_exceeds_log_px_and_its_estimate_is_unbiased(shift, scale):
    mean, logvar = true_posterior(X)
    mean, logvar = mean + shift, logvar + 2 * np.log(scale)
    encode = lambda x: (jnp.asarray(mean), jnp.asarray(logvar))  # noqa: E731
    closed = exact_elbo(X, mean, logvar)
    assert np.all(closed < exact_log_px(X) - 1e-3)
    terms = mc_elbo(encode)
    se = terms.elbo.std(0) / math.sqrt(terms.elbo.shape[0])
    assert np.all(np.abs(terms.elbo.mean(0) - closed) < 4 * se + 1e-4), (terms.elbo.mean(0),
                                                                         closed)
    # the KL is analytic: the same for every sample
    np.testing.assert_allclose(terms.kl[0], 0.5 * np.sum(mean ** 2 + np.exp(logvar) - 1
                                                         - logvar, axis=1), rtol=1e-5)


def test_iwae_bound_increases_with_k_towards_log_px():
    mean, logvar = true_posterior(X)
    encode = lambda x: (jnp.asarray(mean + 0.4), jnp.asarray(logvar + np.log(4.0)))  # noqa
    ks = (1, 8, 64, 256)
    reps = jax.random.split(jax.random.key(2), 200)

    @jax.jit
    def estimates(reps):
        log_weight = vae.log_weight_fn(jnp.asarray(X), encode, log_likelihood)
        return [jax.vmap(lambda r, k=k: vae.iwae_bound(log_weight, r, k))(reps) for k in ks]

    est = [np.asarray(e) for e in estimates(reps)]
    means = np.array([e.mean(0) for e in est])               # (len(ks), B)
    ses = np.array([e.std(0) / math.sqrt(len(reps)) for e in est])
    log_px = exact_log_px(X)
    assert np.all(np.diff(means, axis=0) > -3 * (ses[1:] + ses[:-1])), means
    assert np.all(means[-1] - means[0] > 0.5)                # the gain is real
    assert np.all(means <= log_px + 3 * ses), (means, log_px)
    np.testing.assert_allclose(means[-1], log_px, atol=0.05)
    gaps = log_px - means
    assert np.all(gaps[-1] < 0.1 * gaps[0])


def test_chunked_estimate_equals_the_bound_and_does_not_depend_on_the_batch():
    mean, logvar = true_posterior(X)
    enc = lambda x: (jnp.asarray(mean[:len(x)] + 0.3), jnp.asarray(logvar[:len(x)] + 1.0))  # noqa
    rng = jax.random.key(3)

    @jax.jit
    def everything(x, rng):
        lw = vae.log_weight_fn(x, enc, log_likelihood)
        chunked = [vae.log_likelihood_estimate(lw, rng, 50, chunk_size=c) for c in (7, 50, 64)]
        first_two = vae.iwae_bound(vae.log_weight_fn(x[:2], enc, log_likelihood), rng, 50)
        terms = vae.elbo(x, rng, enc, log_likelihood)
        eps = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 0), (2,)))(
            vae.sample_keys(rng, 3, 0))
        z = jnp.asarray(mean + 0.3) + jnp.exp(0.5 * jnp.asarray(logvar + 1.0)) * eps
        return (vae.iwae_bound(lw, rng, 50), chunked, first_two, terms.reconstruction,
                log_likelihood(x, z))

    whole, chunked, first_two, rec, rec_by_hand = everything(jnp.asarray(X), rng)
    for c in chunked:
        np.testing.assert_allclose(c, whole, rtol=1e-6)
    np.testing.assert_allclose(first_two, whole[:2], rtol=1e-6)
    # the ELBO's sample is sample 0 of the bound (noise of layer 0 from sample_keys(rng, B, 0))
    np.testing.assert_allclose(rec, rec_by_hand, rtol=1e-5)


def test_estimate_memory_does_not_grow_with_k():
    d = 64
    x = jnp.zeros((8, d))
    enc = lambda x: (jnp.zeros((x.shape[0], 16)), jnp.zeros((x.shape[0], 16)))  # noqa: E731
    dec = jnp.ones((16, d)) * 0.01
    ll = lambda x, z: vae.gaussian_log_likelihood(x, z @ dec, 0.0)  # noqa: E731

    def temp_bytes(k):
        fn = jax.jit(lambda x, r: vae.log_likelihood_estimate(
            vae.log_weight_fn(x, enc, ll), r, k, chunk_size=50))
        return fn.lower(x, jax.random.key(0)).compile().memory_analysis().temp_size_in_bytes

    small, large = temp_bytes(100), temp_bytes(5000)
    assert large <= 1.1 * small + 4096, (small, large)
    # holding all k samples at once (iwae_bound) needs k x 8 x 64 floats at least
    assert large < 5000 * 8 * 64 * 4 / 20


def test_two_layer_hierarchy_matches_its_single_layer_collapse():
    """A hierarchy whose lower prior ignores z_2 (p(z_1|z_2) = N(0, I)) and whose top layer
    is the prior itself is the one-layer model: same ELBO, KL of the top layer 0."""
    mean, logvar = true_posterior(X)
    enc1 = lambda x: (jnp.asarray(mean), jnp.asarray(logvar))  # noqa: E731
    enc2 = lambda z1: (jnp.zeros((z1.shape[0], 3)), jnp.zeros((z1.shape[0], 3)))  # noqa
    prior = lambda z2: (jnp.zeros((z2.shape[0], 2)), jnp.zeros((z2.shape[0], 2)))  # noqa
    rng = jax.random.key(4)

    @jax.jit
    def run(x):
        two = vae.elbo(x, rng, [enc1, enc2], log_likelihood, priors=[prior])
        one = vae.elbo(x, rng, enc1, log_likelihood)
        lw = vae.log_weight_fn(x, [enc1, enc2], log_likelihood, priors=[prior])
        return two, one, lw(rng, 3), vae.sample_latents(rng, 5, (3,), priors=[prior])

    two, one, log_w, z1 = run(jnp.asarray(X))
    np.testing.assert_allclose(two.reconstruction, one.reconstruction, rtol=1e-6)
    np.testing.assert_allclose(two.layer_kls[1], 0.0, atol=1e-6)
    np.testing.assert_allclose(log_w, exact_log_px(X), atol=2e-4)
    assert z1.shape == (5, 2)


def test_bad_model_functions_are_named():
    mean, logvar = true_posterior(X)
    enc = lambda x: (jnp.asarray(mean), jnp.asarray(logvar))  # noqa: E731
    with pytest.raises(ValueError, match="one value per example"):
        vae.elbo(jnp.asarray(X), jax.random.key(0), enc, lambda x, z: x)
    with pytest.raises(ValueError, match="1 conditional prior"):
        vae.elbo(jnp.asarray(X), jax.random.key(0), [enc, enc], log_likelihood)
    with pytest.raises(ValueError, match="float array"):
        vae.elbo(jnp.asarray(X, jnp.int32), jax.random.key(0), enc, log_likelihood)
    with pytest.raises(ValueError, match="num_samples"):
        vae.iwae_bound(vae.log_weight_fn(jnp.asarray(X), enc, log_likelihood),
                       jax.random.key(0), 0)
    assert float(vae.bits_per_dim(784 * math.log(2.0), 784)) == pytest.approx(1.0)
