"""The one-loop ancestral sampler: a model with known conditionals gives the right joint
frequencies; temperature 0 is the argmax, top-k keeps the k most likely values, and an
example's draws do not depend on the batch size."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import autoregressive as ar
from tests.autoregressive import known_model as km


@functools.partial(jax.jit, static_argnames=("num", "temperature", "top_k"))
def _draw(rng, num, temperature=1.0, top_k=0):
    return ar.sample(km.categorical_logits, rng, (num, 3), temperature=temperature,
                     top_k=top_k)


def _frequencies(x):
    codes = x[:, 0] * 4 + x[:, 1] * 2 + x[:, 2]
    return np.bincount(np.asarray(codes), minlength=8) / len(codes)


def test_samples_follow_the_known_joint_distribution():
    n = 20_000
    x = np.asarray(_draw(jax.random.key(0), n))
    p = np.array([km.prob(s) for s in km.ALL])
    tolerance = 5 * np.sqrt(p * (1 - p) / n)   # 5 standard errors per sequence
    np.testing.assert_array_less(np.abs(_frequencies(x) - p), tolerance)


def test_temperature_zero_and_top_1_are_greedy_decoding():
    # argmax by hand: x1 = 0 (p 0.7), x2 = 1 (p 0.6 given x1 = 0), x3 = 0 (p 0.55)
    greedy = np.asarray(_draw(jax.random.key(1), 16, temperature=0.0))
    assert (greedy == np.array([0, 1, 0])).all()
    top1 = np.asarray(_draw(jax.random.key(2), 16, top_k=1))
    assert (top1[:, :2] == np.array([0, 1])).all()


def _single_position(probs):
    logits = jnp.log(jnp.asarray(probs))
    return lambda x: jnp.broadcast_to(logits, x.shape + (len(probs),))


def test_top_k_and_temperature_reshape_the_distribution():
    probs = np.array([0.1, 0.4, 0.2, 0.3])
    fn = _single_position(probs)
    n = 20_000
    top2 = np.asarray(ar.sample(fn, jax.random.key(3), (n, 1), top_k=2))[:, 0]
    freq = np.bincount(top2, minlength=4) / n
    assert freq[0] == 0 and freq[2] == 0                  # outside the top 2: never
    assert freq[1] == pytest.approx(0.4 / 0.7, abs=0.02)  # renormalised among the top 2
    cold = np.asarray(ar.sample(fn, jax.random.key(4), (n, 1), temperature=0.5))[:, 0]
    want = probs ** 2 / np.sum(probs ** 2)                # softmax(log p / 0.5) = p^2 / Z
    np.testing.assert_allclose(np.bincount(cold, minlength=4) / n, want, atol=0.02)


def test_an_example_does_not_depend_on_the_batch_size_and_init_is_kept():
    big = np.asarray(_draw(jax.random.key(5), 16))
    small = np.asarray(_draw(jax.random.key(5), 4))
    np.testing.assert_array_equal(big[:4], small)
    init = jnp.ones((16, 3), jnp.int32)
    completed = np.asarray(ar.sample(km.categorical_logits, jax.random.key(6), (16, 3),
                                     init=init, start=1))
    assert (completed[:, 0] == 1).all()                   # position 0 kept from init
    # x2 | x1 = 1 is 1 with probability 0.9: mostly ones, but not a copy of init
    assert 0.5 < completed[:, 1].mean() and not (completed == 1).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -1.0}, "temperature"),
    ({"top_k": 3}, "top_k"),
    ({"start": 4}, "start"),
    ({"init": jnp.zeros((2, 2), jnp.int32)}, "init must have shape"),
])
def test_bad_sampler_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError) as e:
        ar.sample(km.categorical_logits, jax.random.key(0), (2, 3), **kwargs)
    assert message in str(e.value)
