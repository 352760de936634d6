"""A model with fixed, known conditionals over binary sequences of length 3, for testing
likelihoods and samplers against hand-computed values."""

import itertools
import math

import jax.numpy as jnp
import numpy as np

P1 = 0.3                                   # p(x1 = 1)
P2 = {0: 0.6, 1: 0.9}                      # p(x2 = 1 | x1)
P3 = {(0, 0): 0.2, (0, 1): 0.45, (1, 0): 0.7, (1, 1): 0.05}   # p(x3 = 1 | x1, x2)


def prob(x) -> float:
    """p(x1, x2, x3) by the chain rule, by hand."""
    a, b, c = (int(v) for v in x)
    p = P1 if a else 1 - P1
    p *= P2[a] if b else 1 - P2[a]
    return p * (P3[(a, b)] if c else 1 - P3[(a, b)])


ALL = np.array(list(itertools.product((0, 1), repeat=3)), np.int32)   # the 8 sequences


def _logit(p):
    return math.log(p) - math.log(1 - p)


def bernoulli_logits(x):
    """x (B, 3) -> (B, 3) logits of p(x_i = 1 | x_<i); row i reads x_<i only."""
    x = jnp.asarray(x).astype(jnp.int32)
    l1 = jnp.full(x.shape[:1], _logit(P1))
    l2 = jnp.where(x[:, 0] == 1, _logit(P2[1]), _logit(P2[0]))
    table = jnp.array([[_logit(P3[(a, b)]) for b in (0, 1)] for a in (0, 1)])
    l3 = table[x[:, 0], x[:, 1]]
    return jnp.stack([l1, l2, l3], axis=1)


def categorical_logits(x):
    """The same model as 2-way categorical logits (B, 3, 2), unnormalised (shifted by an
    arbitrary per-position constant, which a softmax ignores)."""
    logit = bernoulli_logits(x)
    return jnp.stack([jnp.full_like(logit, 1.7), logit + 1.7], axis=-1)
