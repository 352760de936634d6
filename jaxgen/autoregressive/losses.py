"""Exact negative log-likelihoods of autoregressive models from their logits.

An autoregressive model factorises p(x) = prod_i p(x_i | x_<i) (the lectures' chain rule;
van den Oord et al. 2016, "Pixel Recurrent Neural Networks", Eq. 1). A network that
outputs, at every position i, the logits of p(x_i | x_<i) computed from x_<i only (masked
convolutions, a causal transformer) gives the exact -log p(x) of a whole example in one
pass: the sum over positions of the cross-entropy of x_i under its logits.

Losses return one value per example (nats), summed over every non-batch position.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp

from jaxgen.core import checks


def _check_targets(fn: str, logits, targets, categorical: bool) -> None:
    shape, tshape = tuple(jnp.shape(logits)), tuple(jnp.shape(targets))
    want = shape[:-1] if categorical else shape
    if len(tshape) < 1 or tshape != want:
        what = "(B, ..., K) logits and (B, ...) targets" if categorical else \
            "logits and targets of one shape (B, ...)"
        raise ValueError(f"{fn}: expected {what}, got logits {shape} and targets {tshape}")


def categorical_nll(logits: chex.Array, targets: chex.Array) -> chex.Array:
    """-log p(x) = -sum_i log softmax(logits_i)[x_i] per example, in nats.

    Args:
      logits: (B, ..., K) unnormalised log-probabilities of the K values of every
        position, position i computed from x_<i only.
      targets: (B, ...) integer values in [0, K).

    Returns:
      (B,) negative log-likelihoods in nats.
    """
    _check_targets("categorical_nll", logits, targets, categorical=True)
    if not jnp.issubdtype(jnp.result_type(targets), jnp.integer):
        raise ValueError(f"categorical_nll: targets must be integers in [0, K), got dtype "
                         f"{jnp.result_type(targets)}")
    k = jnp.shape(logits)[-1]
    checks.check_range("targets", targets, 0, k - 1, where="categorical_nll: ")
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return -jnp.sum(picked.reshape((picked.shape[0], -1)), axis=-1)


def bernoulli_nll(logits: chex.Array, targets: chex.Array) -> chex.Array:
    """-log p(x) for binary data: -sum_i [x_i log s(l_i) + (1 - x_i) log(1 - s(l_i))].

    Args:
      logits: (B, ...) logit of p(x_i = 1 | x_<i) at every position.
      targets: (B, ...) values in {0, 1} (float or int).

    Returns:
      (B,) negative log-likelihoods in nats.
    """
    _check_targets("bernoulli_nll", logits, targets, categorical=False)
    checks.check_range("targets", targets, 0, 1, where="bernoulli_nll: ")
    logits = logits.astype(jnp.float32)
    x = jnp.asarray(targets, jnp.float32)
    # log s(l) = -softplus(-l), log(1 - s(l)) = -softplus(l): stable for large |l|.
    per = x * jax.nn.softplus(-logits) + (1.0 - x) * jax.nn.softplus(logits)
    return jnp.sum(per.reshape((per.shape[0], -1)), axis=-1)


def bits_per_dim(nats: chex.Array, num_dims: int) -> chex.Array:
    """Nats per example -> bits per dimension, nats / (D ln 2)."""
    checks.check_int("num_dims", num_dims)
    return nats / (num_dims * math.log(2.0))


def binary_to_categorical(logits: chex.Array) -> chex.Array:
    """Bernoulli logits (B, ...) -> the equivalent 2-way categorical logits (B, ..., 2):
    softmax([0, l]) = (1 - s(l), s(l))."""
    logits = jnp.asarray(logits)
    return jnp.stack([jnp.zeros_like(logits), logits], axis=-1)
