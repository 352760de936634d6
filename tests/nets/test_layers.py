"""Tests for the rewritten layer ops: values and gradients against the plain JAX/Flax ops."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.nets import attention as attention_lib
from jaxgen.nets.attention import dot_product_attention
from jaxgen.nets.layers import Attention

# (B, T_q, T_k, H, D): batch 1, odd batch, T_q != T_k, the UNet's 8 heads of 8.
ATTENTION_SHAPES = [
    (1, 16, 16, 2, 4),
    (3, 9, 9, 1, 8),
    (2, 12, 7, 3, 5),
    (3, 256, 256, 8, 8),  # 24 problems of 256 KiB scores: 2 chunks of 12 (a loop)
    (2, 24, 17, 3, 64),   # wide heads (DiT-S/2 has 6 of 64)
]


def _qkv(shape, seed=0, scale=1.0):
    b, tq, tk, h, d = shape
    kq, kk, kv, kg = jax.random.split(jax.random.key(seed), 4)
    q = scale * jax.random.normal(kq, (b, tq, h, d))
    k = scale * jax.random.normal(kk, (b, tk, h, d))
    v = jax.random.normal(kv, (b, tk, h, d))
    g = jax.random.normal(kg, (b, tq, h, d))
    return q, k, v, g


@jax.jit
def _value_and_vjp(q, k, v, g):
    # jit: op-by-op dispatch of the chunk loop would dominate the test time.
    out, vjp = jax.vjp(dot_product_attention, q, k, v)
    ref, ref_vjp = jax.vjp(jax.nn.dot_product_attention, q, k, v)
    return out, ref, vjp(g), ref_vjp(g)


def _assert_attention_matches(q, k, v, g, atol):
    out, ref, grads, ref_grads = _value_and_vjp(q, k, v, g)
    np.testing.assert_allclose(out, ref, atol=atol, rtol=1e-5)
    for name, a, r in zip("qkv", grads, ref_grads):
        np.testing.assert_allclose(a, r, atol=atol, rtol=1e-4, err_msg=f"d{name}")


@pytest.mark.parametrize("shape", ATTENTION_SHAPES)
def test_attention_matches_jax_nn(shape):
    q, k, v, g = _qkv(shape)
    _assert_attention_matches(q, k, v, g, atol=2e-5)


@pytest.mark.parametrize("budget_floats", [1, 7 * 9, 4 * 81, 10 ** 6])
def test_attention_chunking_does_not_change_the_result(monkeypatch, budget_floats):
    # G = 9 problems of 9x9 and of 3x7 scores: budget 1 float gives one problem
    # per chunk (9 chunks); 63 floats gives chunks of 3 for the 3x7 scores (not
    # a power of two) and 1 for the 9x9; 1e6 a single chunk without a loop.
    # G = 8 problems of 9x9 with 324 floats: 2 chunks of 4, each computed as two
    # halves of 2 (with 63 floats: 8 chunks of 1, which cannot be halved).
    # The budget is read at trace time, so clear jit's cache of earlier traces.
    # The inference forward (no gradient) has its own budget; it is chunked the same way.
    _value_and_vjp.clear_cache()
    monkeypatch.setattr(attention_lib, "_CHUNK_SCORE_BYTES", 4 * budget_floats)
    monkeypatch.setattr(attention_lib, "_INFERENCE_SCORE_BYTES", 4 * budget_floats)
    for shape in [(3, 9, 9, 3, 4), (3, 3, 7, 3, 4), (2, 9, 9, 4, 4)]:
        q, k, v, g = _qkv(shape, seed=1)
        _assert_attention_matches(q, k, v, g, atol=2e-5)
        fresh = jax.jit(lambda q, k, v: dot_product_attention(q, k, v))  # traced anew
        np.testing.assert_allclose(fresh(q, k, v),
                                   jax.nn.dot_product_attention(q, k, v), atol=2e-5, rtol=1e-5)


def test_chunk_size_divides_and_fits():
    budget = attention_lib._CHUNK_SCORE_BYTES
    assert attention_lib._chunk_size(256, 256, 256, budget) * 4 * 256 * 256 <= budget
    for groups in [1, 7, 9, 24, 256]:
        c = attention_lib._chunk_size(groups, 16, 16, budget)
        assert groups % c == 0 and 1 <= c <= groups
    assert attention_lib._chunk_size(7, 1024, 1024, budget) == 1  # over budget: 1 per chunk
    assert attention_lib._chunk_size(6, 8, 8, budget) == 6  # all fit: one chunk, no loop
    # the UNet's 16x16 level at batch 32 (256 problems of 256 x 256): chunks of 16 in
    # training, one piece at inference
    assert attention_lib._chunk_size(256, 256, 256, budget) == 16
    assert attention_lib._chunk_size(256, 256, 256, attention_lib._INFERENCE_SCORE_BYTES) == 256


def test_attention_is_stable_for_large_logits():
    # Logits of order 1e3: a softmax without max subtraction would overflow.
    q, k, v, g = _qkv((2, 16, 16, 2, 8), seed=2, scale=12.0)
    out = dot_product_attention(q, k, v)
    assert bool(jnp.all(jnp.isfinite(out)))
    _assert_attention_matches(q, k, v, g, atol=1e-4)


def test_attention_dtype_and_jit():
    q, k, v, _ = _qkv((2, 8, 8, 2, 4))
    out = jax.jit(dot_product_attention)(q.astype(jnp.bfloat16), k.astype(jnp.bfloat16),
                                         v.astype(jnp.bfloat16))
    assert out.dtype == jnp.bfloat16
    ref = jax.nn.dot_product_attention(q, k, v)
    np.testing.assert_allclose(out.astype(jnp.float32), ref, atol=3e-2)


def test_attention_bad_shapes():
    with pytest.raises(ValueError, match="expected q"):
        dot_product_attention(jnp.zeros((2, 4, 8)), jnp.zeros((2, 4, 8)), jnp.zeros((2, 4, 8)))
    with pytest.raises(ValueError, match="expected q"):
        dot_product_attention(jnp.zeros((2, 4, 2, 8)), jnp.zeros((2, 4, 2, 4)),
                              jnp.zeros((2, 4, 2, 4)))


class _ReferenceAttention(Attention):
    """The layer as it was written first: flax GroupNorm/Dense and jax.nn attention."""

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        heads = c // self.head_dim
        y = nn.GroupNorm(self.num_groups, epsilon=self.eps, name="norm")(x).reshape(b, h * w, c)
        q, k, v = (nn.Dense(c, name=n)(y).reshape(b, h * w, heads, self.head_dim)
                   for n in ("to_q", "to_k", "to_v"))
        y = jax.nn.dot_product_attention(q, k, v).reshape(b, h * w, c)
        return x + nn.Dense(c, name="to_out")(y).reshape(b, h, w, c)


@pytest.mark.parametrize("shape", [(1, 4, 4, 16), (3, 6, 5, 16)])
def test_attention_layer_matches_reference_in_value_and_gradients(shape):
    x = jax.random.normal(jax.random.key(3), shape)
    layer, ref = Attention(head_dim=8, num_groups=4), _ReferenceAttention(head_dim=8, num_groups=4)
    params = layer.init(jax.random.key(4), x)
    # Same parameter names and shapes as the reference layer.
    assert (jax.tree.map(jnp.shape, params)
            == jax.tree.map(jnp.shape, jax.eval_shape(ref.init, jax.random.key(4), x)))
    # Non-trivial norm parameters, so that their gradients are tested too.
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(5), p.shape), params)
    g = jax.random.normal(jax.random.key(6), shape)

    def value_and_grads(module):
        def loss(p, x):
            y = module.apply(p, x)
            return jnp.sum(y * g), y
        return jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(params, x)

    grads, out = value_and_grads(layer)
    ref_grads, ref_out = value_and_grads(ref)
    np.testing.assert_allclose(out, ref_out, atol=2e-5, rtol=1e-5)
    jax.tree.map(lambda a, r: np.testing.assert_allclose(a, r, atol=5e-5, rtol=1e-4),
                 grads, ref_grads)
