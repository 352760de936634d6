"""The ELBO, the importance-weighted bound and log-likelihood estimates.

A model is given as callables, so any network plugs in:

* ``encode(x) -> (mean, logvar)``: q(z|x) = N(mean, diag(exp(logvar))); for a Markovian
  hierarchy of L stochastic layers, a sequence ``[q(z_1|x), q(z_2|z_1), ..., q(z_L|z_{L-1})]``
  of such callables (z_1 is nearest the data);
* ``priors``: for L > 1 layers, ``[p(z_1|z_2), ..., p(z_{L-1}|z_L)]``, each
  ``z_{l+1} -> (mean, logvar)``; the top layer's prior is N(prior_mean, exp(prior_logvar)),
  the standard normal by default;
* ``log_likelihood(x, z_1) -> (B,)``: log p(x|z_1), e.g. a ``likelihoods`` function of the
  decoder's output.

ELBO (the lectures' two derivations; Kingma & Welling 2014, Eq. 3):
log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z)). The KL of the top layer is analytic;
lower layers of a hierarchy use the one-sample estimate log q(z_l|z_{l-1}) -
log p(z_l|z_{l+1}) (the prior of z_l depends on a sampled z_{l+1}).

IWAE (Burda et al. 2016, "Importance Weighted Autoencoders", Eq. 8):
L_k = E[log (1/k) sum_i w_i], w_i = p(x, z_i) / q(z_i|x), z_i ~ q(z|x) independently.
L_1 is the ELBO, L_k <= L_{k+1} <= log p(x) and L_k -> log p(x) as k -> infinity; with large
k it is the standard log-likelihood estimate of VAEs (Burda et al. use k = 5000).

Randomness: sample i of example b draws layer l's noise from
``fold_in(fold_in(fold_in(rng, b), i), l)``. So an example's samples depend on neither
the batch size nor the chunking of the k samples, and the ELBO's sample is sample 0 of
the IWAE bound under the same key. All functions are jit- and grad-able; every value is
per example (B,), in nats, for the caller to reduce.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from jaxgen.core import checks
from jaxgen.core.rng import per_example_keys
from jaxgen.core.rng import initial_noise
from jaxgen.vae.latent import gaussian_kl, gaussian_log_prob, reparameterize


class ELBOTerms(NamedTuple):
    """Per-example terms of the ELBO, each (B,) in nats.

    Attributes:
      elbo: reconstruction - kl, the bound on log p(x).
      reconstruction: one-sample estimate of E_q[log p(x|z)].
      kl: KL(q || p) summed over the layers (analytic for the top one).
      objective: reconstruction - beta * kl, what training maximises (= elbo for beta=1).
      layer_kls: (L, B) the KL of each stochastic layer, z_1 first.
    """

    elbo: chex.Array
    reconstruction: chex.Array
    kl: chex.Array
    objective: chex.Array
    layer_kls: chex.Array


def _encoders(encode) -> list:
    encoders = list(encode) if isinstance(encode, (list, tuple)) else [encode]
    if not encoders or not all(callable(e) for e in encoders):
        raise ValueError("encode must be a callable x -> (mean, logvar) or a non-empty "
                         f"sequence of them (one per stochastic layer), got {encode!r}")
    return encoders


def _check_priors(priors, num_layers: int) -> list:
    priors = list(priors)
    if len(priors) != num_layers - 1 or not all(callable(p) for p in priors):
        raise ValueError(f"{num_layers} stochastic layer(s) need {num_layers - 1} conditional "
                         f"prior(s) p(z_l | z_(l+1)), callables z -> (mean, logvar), got "
                         f"{len(priors)}")
    return priors


def _check_x(x) -> int:
    checks.check_float_array("x", x)
    checks.check_batched("x", x)
    return jnp.shape(x)[0]


def _check_per_example(name: str, value, batch: int):
    if jnp.shape(value) != (batch,):
        raise ValueError(f"{name} must return one value per example, shape ({batch},), got "
                         f"{tuple(jnp.shape(value))} (sum over the data axes)")
    return value


def sample_keys(rng: chex.PRNGKey, batch_size: int, index) -> chex.Array:
    """(B,) keys of importance sample ``index``: ``fold_in(fold_in(rng, b), index)``."""
    return jax.vmap(lambda k: jax.random.fold_in(k, index))(per_example_keys(rng, batch_size))


def _chain(x, keys, encoders, first):
    """Samples z_1 .. z_L from the encoder chain: lists of z, mean, logvar per layer."""
    zs, means, logvars = [], [], []
    h = x
    for layer, enc in enumerate(encoders):
        mean, logvar = first if layer == 0 else enc(h)
        eps = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, layer),
                                                   jnp.shape(mean)[1:], mean.dtype))(keys)
        h = reparameterize(mean, logvar, eps)
        zs.append(h)
        means.append(mean)
        logvars.append(logvar)
    return zs, means, logvars


def _lower_layer_kls(zs, means, logvars, priors):
    """One-sample log q(z_l | .) - log p(z_l | z_(l+1)) for l = 1 .. L-1."""
    out = []
    for layer, prior in enumerate(priors):
        p_mean, p_logvar = prior(zs[layer + 1])
        out.append(gaussian_log_prob(zs[layer], means[layer], logvars[layer])
                   - gaussian_log_prob(zs[layer], p_mean, p_logvar))
    return out


def elbo(x: chex.Array, rng: chex.PRNGKey, encode, log_likelihood: Callable, *,
         priors: Sequence[Callable] = (), beta: float = 1.0, prior_mean=0.0,
         prior_logvar=0.0) -> ELBOTerms:
    """The evidence lower bound with one reparameterized sample per example.

    Args:
      x: (B, ...) data in the likelihood's space (binary for a Bernoulli decoder).
      rng: key; example b's noise is ``sample_keys(rng, B, 0)[b]``.
      encode: ``x -> (mean, logvar)``, or a sequence of encoders for a hierarchy.
      log_likelihood: ``(x, z_1) -> (B,)`` log p(x|z_1).
      priors: conditional priors of a hierarchy (see the module docstring).
      beta: weight of the KL in ``objective`` (beta-VAE, Higgins et al. 2017; a tiny beta
        such as 1e-6 gives latent diffusion's KL-regularised autoencoder).
      prior_mean, prior_logvar: the top layer's prior N(prior_mean, exp(prior_logvar)).

    Returns:
      ``ELBOTerms``, each (B,) (``layer_kls`` (L, B)).
    """
    batch = _check_x(x)
    encoders = _encoders(encode)
    priors = _check_priors(priors, len(encoders))
    zs, means, logvars = _chain(x, sample_keys(rng, batch, 0), encoders, encoders[0](x))
    rec = _check_per_example("log_likelihood", log_likelihood(x, zs[0]), batch)
    kls = _lower_layer_kls(zs, means, logvars, priors)
    kls.append(gaussian_kl(means[-1], logvars[-1], prior_mean, prior_logvar))
    layer_kls = jnp.stack(kls)
    kl = jnp.sum(layer_kls, axis=0)
    return ELBOTerms(elbo=rec - kl, reconstruction=rec, kl=kl, objective=rec - beta * kl,
                     layer_kls=layer_kls)


def log_weight_fn(x: chex.Array, encode, log_likelihood: Callable, *,
                  priors: Sequence[Callable] = (), prior_mean=0.0,
                  prior_logvar=0.0) -> Callable:
    """The log importance weight log p(x, z) - log q(z|x) of one sample, as a function.

    The first encoder runs once, here; the returned ``log_weight(rng, index) -> (B,)``
    draws sample ``index`` (``sample_keys(rng, B, index)``) and evaluates the decoder,
    so ``iwae_bound`` and ``log_likelihood_estimate`` pay the encoder once for any k.
    """
    batch = _check_x(x)
    encoders = _encoders(encode)
    priors = _check_priors(priors, len(encoders))
    first = encoders[0](x)

    def log_weight(rng, index):
        zs, means, logvars = _chain(x, sample_keys(rng, batch, index), encoders, first)
        log_px = _check_per_example("log_likelihood", log_likelihood(x, zs[0]), batch)
        log_pz = gaussian_log_prob(zs[-1], prior_mean, prior_logvar)
        log_qz = gaussian_log_prob(zs[-1], means[-1], logvars[-1])
        return log_px + log_pz - log_qz - sum(_lower_layer_kls(zs, means, logvars, priors))

    return log_weight


def log_weights(log_weight: Callable, rng: chex.PRNGKey, num_samples: int) -> chex.Array:
    """(k, B) log weights of samples 0 .. k-1 (all at once: memory grows with k)."""
    k = checks.check_int("num_samples", num_samples)
    return jax.vmap(lambda i: log_weight(rng, i))(jnp.arange(k))


def log_mean_exp(log_w: chex.Array) -> chex.Array:
    """log (1/k) sum_i exp(log_w[i]) over the first axis (k, B) -> (B,), stably."""
    return logsumexp(log_w, axis=0) - math.log(jnp.shape(log_w)[0])


def iwae_bound(log_weight: Callable, rng: chex.PRNGKey, num_samples: int) -> chex.Array:
    """L_k = log (1/k) sum_i w_i per example (B,): the training objective of an IWAE.

    Differentiable (Burda et al. 2016, Eq. 14: the gradient weights each sample's
    gradient by its normalised importance weight). Holds all k samples at once; for
    large k (evaluation) use ``log_likelihood_estimate``.

    Args:
      log_weight: from ``log_weight_fn``.
      rng: key of the samples.
      num_samples: k >= 1; k = 1 is the one-sample ELBO with the full log q - log p.
    """
    return log_mean_exp(log_weights(log_weight, rng, num_samples))


def log_likelihood_estimate(log_weight: Callable, rng: chex.PRNGKey, num_samples: int, *,
                            chunk_size: int = 100) -> chex.Array:
    """The IWAE estimate of log p(x) with k samples, in chunks: (B,) nats.

    Equal to ``iwae_bound`` with the same key (the samples are the same), but only
    ``chunk_size`` samples exist at a time: a ``lax.scan`` over ceil(k / chunk_size)
    chunks accumulates logsumexp, so memory does not grow with k (k = 5000 as in
    Burda et al. 2016, Sec. 5). Samples past k in the last chunk are masked out.
    """
    k = checks.check_int("num_samples", num_samples)
    chunk = min(checks.check_int("chunk_size", chunk_size), k)
    num_chunks = -(-k // chunk)

    def body(acc, c):
        idx = c * chunk + jnp.arange(chunk)
        w = jax.vmap(lambda i: log_weight(rng, i))(idx)
        w = jnp.where((idx < k)[:, None], w, -jnp.inf)
        return jnp.logaddexp(acc, logsumexp(w, axis=0)), None

    shape = jax.eval_shape(log_weight, rng, 0)
    init = jnp.full(shape.shape, -jnp.inf, shape.dtype)
    acc, _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
    return acc - math.log(k)


def bits_per_dim(nats: chex.Array, num_dims: int) -> chex.Array:
    """Negative log-likelihood in nats per example -> bits per data dimension,
    nats / (D ln 2)."""
    checks.check_int("num_dims", num_dims)
    return nats / (num_dims * math.log(2.0))


def sample_latents(rng: chex.PRNGKey, num: int, latent_shape, *,
                   priors: Sequence[Callable] = (), prior_mean=0.0,
                   prior_logvar=0.0) -> chex.Array:
    """Ancestral samples of z_1: z_L from the top prior, then z_l ~ p(z_l | z_(l+1))
    down the hierarchy. Returns (num, *latent_shape of z_1).

    Args:
      latent_shape: shape of one top-layer latent z_L (without the batch axis).
      priors: ``[p(z_1|z_2), ..., p(z_(L-1)|z_L)]`` as in ``elbo``; empty for one layer.
    """
    n = checks.check_int("num", num)
    z = initial_noise(jax.random.fold_in(rng, 0), (n,) + tuple(latent_shape))
    z = prior_mean + jnp.exp(0.5 * jnp.asarray(prior_logvar)) * z
    for depth, prior in enumerate(reversed(list(priors))):
        mean, logvar = prior(z)
        z = reparameterize(mean, logvar, initial_noise(jax.random.fold_in(rng, depth + 1),
                                                       jnp.shape(mean), mean.dtype))
    return z
