"""The causal transformer prior: row i of the logits depends on tokens < i only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.nets.ar_transformer import ARTransformer
from tests.nets.random_params import random_params


def test_logits_of_position_i_depend_only_on_earlier_tokens():
    length, k = 6, 5
    model = ARTransformer(num_tokens=k, seq_len=length, embed_dim=16, num_layers=2,
                          num_heads=2, mlp_ratio=2)
    x = jax.random.randint(jax.random.key(0), (1, length), 0, k)
    params = random_params(model, x)
    apply = jax.jit(model.apply)
    base = np.asarray(apply(params, x))
    assert base.shape == (1, length, k)
    for j in range(length):
        changed = np.asarray(apply(params, x.at[0, j].set((x[0, j] + 1) % k)))
        np.testing.assert_array_equal(changed[0, :j + 1], base[0, :j + 1])  # rows <= j
        if j < length - 1:
            assert np.abs(changed[0, j + 1:] - base[0, j + 1:]).max() > 0  # rows > j see it


def test_bad_shapes_are_refused():
    model = ARTransformer(num_tokens=4, seq_len=3, embed_dim=6, num_heads=4)
    with pytest.raises(ValueError, match="divisible"):
        model.init(jax.random.key(0), jnp.zeros((1, 3), jnp.int32))
    model = ARTransformer(num_tokens=4, seq_len=3, embed_dim=8, num_heads=2)
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        model.init(jax.random.key(0), jnp.zeros((1, 4), jnp.int32))
