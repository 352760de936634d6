"""Exact likelihoods from logits: a model with fixed known conditionals gives the
hand-computed -log p(x), its probabilities sum to one, and bad inputs are refused."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import autoregressive as ar
from tests.autoregressive import known_model as km


def test_nll_of_known_conditionals_equals_the_hand_computed_value():
    x = km.ALL
    want = np.array([-math.log(km.prob(s)) for s in x])
    # e.g. x = (1, 0, 1): -log(0.3 * 0.1 * 0.7)
    assert want[5] == pytest.approx(-math.log(0.3 * 0.1 * 0.7))
    got_cat = ar.categorical_nll(km.categorical_logits(x), jnp.asarray(x))
    got_bern = ar.bernoulli_nll(km.bernoulli_logits(x), jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(got_cat, want, rtol=1e-5)
    np.testing.assert_allclose(got_bern, want, rtol=1e-5)
    # a distribution: the probabilities of all 2^3 sequences sum to 1
    assert float(jnp.sum(jnp.exp(-got_cat))) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(ar.bits_per_dim(got_cat, 3), want / (3 * math.log(2)),
                               rtol=1e-5)


def test_categorical_nll_of_images_sums_over_every_position():
    """Independent pixels with known probabilities: the NLL of an image is the sum of its
    pixels' -log p, computed here by hand from the softmax."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 1, 5)).astype(np.float32)
    x = rng.integers(0, 5, size=(2, 3, 4, 1))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    want = -np.log(np.take_along_axis(p, x[..., None], -1)).reshape(2, -1).sum(-1)
    np.testing.assert_allclose(ar.categorical_nll(jnp.asarray(logits), jnp.asarray(x)), want,
                               rtol=1e-5)


def test_binary_to_categorical_is_the_same_distribution():
    logits = jnp.array([[-3.0, 0.0, 2.5]])
    x = jnp.array([[1, 0, 1]])
    np.testing.assert_allclose(ar.categorical_nll(ar.binary_to_categorical(logits), x),
                               ar.bernoulli_nll(logits, x), rtol=1e-6)


@pytest.mark.parametrize("fn, logits, targets, message", [
    (ar.categorical_nll, np.zeros((2, 3, 4)), np.zeros((2, 4), np.int32), "(B, ..., K)"),
    (ar.categorical_nll, np.zeros((2, 3, 4)), np.full((2, 3), 4, np.int32), "[0, 3]"),
    (ar.categorical_nll, np.zeros((2, 3, 4)), np.zeros((2, 3), np.float32), "integers"),
    (ar.bernoulli_nll, np.zeros((2, 3)), np.full((2, 3), 2.0), "[0, 1]"),
    (ar.bernoulli_nll, np.zeros((2, 3)), np.zeros((2, 4)), "one shape"),
])
def test_bad_inputs_are_refused(fn, logits, targets, message):
    with pytest.raises(ValueError) as e:
        fn(jnp.asarray(logits), jnp.asarray(targets))
    assert message in str(e.value), str(e.value)
