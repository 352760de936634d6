"""jaxgen.nets.GroupNorm against flax.linen.GroupNorm and against the definition."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.nets import GroupNorm, group_norm

# (shape, groups): NHWC images (the UNet's), a token sequence, one group, one channel
# per group, an odd batch.
CASES = [
    ((3, 8, 8, 16), 8),
    ((2, 5, 7, 12), 4),
    ((2, 10, 6), 3),
    ((4, 4, 4, 8), 1),
    ((1, 3, 3, 6), 6),
]


def _inputs(shape, seed=0):
    kx, ks, kb, kg = jax.random.split(jax.random.key(seed), 4)
    c = shape[-1]
    # A per-channel offset and spread, so that every group has its own statistics.
    x = (jax.random.normal(kx, shape) * jnp.linspace(0.5, 3.0, c)
         + jnp.linspace(-2.0, 4.0, c))
    scale = 1.0 + 0.5 * jax.random.normal(ks, (c,))
    bias = jax.random.normal(kb, (c,))
    cot = jax.random.normal(kg, shape)
    return x, scale, bias, cot


def _flax(x, scale, bias, groups, eps):
    return nn.GroupNorm(groups, epsilon=eps).apply({"params": {"scale": scale, "bias": bias}}, x)


def _ours(x, scale, bias, groups, eps):
    return GroupNorm(groups, epsilon=eps).apply({"params": {"scale": scale, "bias": bias}}, x)


@pytest.mark.parametrize("shape,groups", CASES)
def test_matches_flax_group_norm_in_value_and_gradients(shape, groups):
    x, scale, bias, cot = _inputs(shape)

    @jax.jit
    def both(x, scale, bias, cot):
        # The SiLU after the norm is how every jaxgen network uses it.
        outs = []
        for f in (_ours, _flax):
            y, vjp = jax.vjp(lambda *a: nn.silu(f(*a, groups, 1e-5)), x, scale, bias)
            outs.append((y, vjp(cot)))
        return outs

    (y, grads), (ref, ref_grads) = both(x, scale, bias, cot)
    np.testing.assert_allclose(y, ref, atol=2e-5, rtol=1e-5)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, atol=5e-5, rtol=1e-4)


def test_is_the_definition_per_example_and_group():
    shape, groups = (3, 4, 5, 12), 4
    x, scale, bias, _ = _inputs(shape, seed=1)
    y = np.asarray(group_norm(x, groups, scale, bias, 1e-5))
    xs = np.asarray(x, np.float64).reshape(3, 20, groups, 3)
    mean = xs.mean(axis=(1, 3), keepdims=True)
    var = xs.var(axis=(1, 3), keepdims=True)
    want = ((xs - mean) / np.sqrt(var + 1e-5)).reshape(shape) * np.asarray(scale) + np.asarray(bias)
    np.testing.assert_allclose(y, want, atol=2e-5, rtol=1e-5)
    # Each example is normalised on its own: changing one leaves the others unchanged.
    y2 = np.asarray(group_norm(x.at[0].multiply(10.0), groups, scale, bias, 1e-5))
    np.testing.assert_array_equal(y2[1:], y[1:])


def test_same_parameters_as_flax_and_promoted_output_dtype():
    x = jnp.ones((2, 4, 4, 8), jnp.bfloat16)
    ours = GroupNorm(4, epsilon=1e-5).init(jax.random.key(0), x)
    ref = nn.GroupNorm(4, epsilon=1e-5).init(jax.random.key(0), x)
    assert jax.tree.map(lambda a: (a.shape, a.dtype), ours) == \
        jax.tree.map(lambda a: (a.shape, a.dtype), ref)
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 8)).astype(jnp.bfloat16)
    y = GroupNorm(4, epsilon=1e-5).apply(ours, x)
    assert y.dtype == nn.GroupNorm(4, epsilon=1e-5).apply(ref, x).dtype
    # bf16 parameters keep a bf16 input in bf16; the statistics are still float32.
    bf16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), ours)
    y16 = GroupNorm(4, epsilon=1e-5).apply(bf16, x)
    assert y16.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y16, np.float32), np.asarray(y, np.float32),
                               atol=0.02, rtol=0.02)


def test_constant_groups_give_the_bias_not_nan():
    x = jnp.full((2, 4, 4, 8), 3.0)
    y = group_norm(x, 4, jnp.full((8,), 2.0), jnp.arange(8.0), 1e-5)
    np.testing.assert_allclose(y, jnp.broadcast_to(jnp.arange(8.0), x.shape), atol=1e-6)


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="3 groups do not divide 8 channels"):
        group_norm(jnp.ones((2, 4, 8)), 3, jnp.ones(8), jnp.zeros(8))
    with pytest.raises(ValueError, match=r"\(batch, ..., channels\)"):
        group_norm(jnp.ones((8,)), 2, jnp.ones(8), jnp.zeros(8))
