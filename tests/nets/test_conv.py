"""Tests for jaxgen.nets.conv: values, gradients, Flax module parity, input checks."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxgen.nets import conv as conv_lib
from jaxgen.nets.conv import Conv, conv2d

_DN = ("NHWC", "HWIO", "NHWC")

# (N, H, W, C_in, C_out, K, stride): batch 1 and >1, odd H/W, C_in != C_out,
# K = 1 and 3 (and 5), stride 1 and 2.
SHAPES = [
    (1, 8, 8, 3, 5, 3, 1),
    (3, 7, 9, 4, 6, 3, 1),
    (2, 8, 8, 4, 4, 3, 2),
    (2, 7, 5, 3, 2, 3, 2),
    (2, 6, 7, 3, 5, 1, 1),
    (1, 7, 6, 2, 3, 1, 2),
    (2, 9, 9, 2, 3, 5, 1),
]


def _reference(x, w, b, stride):
    """Plain XLA convolution with PyTorch padding=K//2 (the spec of conv2d)."""
    p = w.shape[0] // 2
    y = lax.conv_general_dilated(x, w, (stride, stride), ((p, p), (p, p)), dimension_numbers=_DN)
    return y if b is None else y + b


def _numpy_conv(x, w, stride):
    """Direct loop convolution, independent of lax, with zero padding K//2."""
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    h_out = (x.shape[1] + 2 * p - k) // stride + 1
    w_out = (x.shape[2] + 2 * p - k) // stride + 1
    out = np.zeros((x.shape[0], h_out, w_out, w.shape[3]), np.float64)
    for i in range(h_out):
        for j in range(w_out):
            patch = xp[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            out[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, w)
    return out


def _inputs(shape, seed=0):
    """Random x, w, b and output cotangent (numpy, so no eager XLA compiles)."""
    n, h, w_, c_in, c_out, k, stride = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w_, c_in), np.float32)
    w = (rng.standard_normal((k, k, c_in, c_out)) / np.sqrt(k * k * c_in)).astype(np.float32)
    b = rng.standard_normal((c_out,), np.float32)
    h_out = (h - 1) // stride + 1
    w_out = (w_ - 1) // stride + 1
    cotangent = rng.standard_normal((n, h_out, w_out, c_out), np.float32)
    return x, w, b, cotangent


def _assert_close(actual, desired, rtol=2e-5):
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape
    assert actual.dtype == desired.dtype
    scale = max(float(np.max(np.abs(desired))), 1e-6)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale)


def _values_and_grads(stride):
    """Jittable fn returning conv2d's and the reference's outputs and gradients.

    Everything for one shape goes through a single compilation to keep the
    suite fast; the loss weights outputs by a random cotangent so that every
    output element matters differently.
    """
    def run(x, w, b, cotangent):
        ours = lambda x, w, b: conv2d(x, w, b, stride=stride)
        ref = lambda x, w, b: _reference(x, w, b, stride)
        ours_nb = lambda x, w: conv2d(x, w, stride=stride)
        ref_nb = lambda x, w: _reference(x, w, None, stride)

        def grads(fn, n_args):
            return jax.grad(lambda *a: jnp.sum(fn(*a) * cotangent), argnums=tuple(range(n_args)))

        return {
            "value": (ours(x, w, b), ref(x, w, b)),
            "grad": (grads(ours, 3)(x, w, b), grads(ref, 3)(x, w, b)),
            "grad_no_bias": (grads(ours_nb, 2)(x, w), grads(ref_nb, 2)(x, w)),
        }

    return run


@pytest.mark.parametrize("shape", SHAPES)
def test_values_and_gradients_match_lax_under_jit(shape):
    x, w, b, cotangent = _inputs(shape)
    stride = shape[-1]
    out = jax.jit(_values_and_grads(stride))(x, w, b, cotangent)
    got, want = out["value"]
    h_out = (shape[1] - 1) // stride + 1
    w_out = (shape[2] - 1) // stride + 1
    assert got.shape == (shape[0], h_out, w_out, shape[4])
    _assert_close(got, want)
    # Independent check of the padding semantics (no lax involved).
    np.testing.assert_allclose(np.asarray(got) - b, _numpy_conv(x, w, stride), rtol=1e-5, atol=1e-5)
    for key in ("grad", "grad_no_bias"):
        got, want = out[key]
        assert len(got) == len(want)
        for g, r in zip(got, want):
            _assert_close(g, r)


def test_gradients_match_lax_without_jit():
    # Eager (op-by-op) use of the custom VJP; the reference runs jitted.
    shape = (2, 5, 6, 3, 4, 3, 1)
    x, w, b, cotangent = _inputs(shape)
    got = jax.grad(lambda x, w, b: jnp.sum(conv2d(x, w, b) * cotangent), argnums=(0, 1, 2))(x, w, b)
    _, want = jax.jit(_values_and_grads(1))(x, w, b, cotangent)["grad"]
    for g, r in zip(got, want):
        _assert_close(g, r)


def test_stride1_equals_lax_same_padding():
    x, w, _, _ = _inputs((2, 6, 7, 3, 4, 3, 1))
    got, same = jax.jit(lambda x, w: (
        conv2d(x, w), lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=_DN)))(x, w)
    _assert_close(got, same)


def test_stride2_pads_like_pytorch_not_lax_same():
    # For even H, lax 'SAME' pads (0, 1) but PyTorch Conv2d(3, 2, padding=1)
    # pads (1, 1): the top-left output must see only the 2x2 corner.
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    w = np.ones((3, 3, 1, 1), np.float32)
    y = jax.jit(lambda x, w: conv2d(x, w, stride=2))(x, w)
    assert y.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(np.asarray(y[0, :, :, 0]), [[0 + 1 + 4 + 5, 1 + 2 + 3 + 5 + 6 + 7],
                                                          [4 + 5 + 8 + 9 + 12 + 13,
                                                           5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15]])


@pytest.mark.parametrize("stride", [1, 2])
def test_weight_gradient_over_uneven_chunks(monkeypatch, stride):
    # Shrink the chunk budget so 5 examples split into chunks (2, 2, 1): the
    # chunked sum must still equal XLA's single weight-gradient convolution.
    shape = (5, 6, 6, 3, 4, 3, stride)
    x, w, b, cotangent = _inputs(shape)
    per_example = (6 * 6 * 3 + (6 // stride) ** 2 * 4) * 4
    monkeypatch.setattr(conv_lib, "_WEIGHT_GRAD_CHUNK_BYTES", 2 * per_example)
    monkeypatch.setattr(conv_lib, "_STRIDED_MIN_CHUNKED_BYTES", 0)
    assert conv_lib._weight_grad_chunk_size(5, per_example, stride) == 2
    # A fresh jit of a fresh function, so the patched budget is traced.
    out = jax.jit(_values_and_grads(stride))(x, w, b, cotangent)
    got, want = out["grad"]
    _assert_close(got[1], want[1])


def test_chunk_size_is_a_bounded_power_of_two(monkeypatch):
    monkeypatch.setattr(conv_lib, "_WEIGHT_GRAD_CHUNK_BYTES", 1000)
    assert conv_lib._weight_grad_chunk_size(32, 100) == 8      # 10 fit -> chunks of 8
    assert conv_lib._weight_grad_chunk_size(7, 100) == 7       # all fit -> one chunk
    assert conv_lib._weight_grad_chunk_size(4, 5000) == 1      # none fit -> one per chunk
    assert conv_lib._weight_grad_chunk_size(11, 200) == 4      # 5 fit -> chunks (4, 4, 3)
    # The chunk count is capped: 1000 examples of which 1 fits -> 32 chunks of 32.
    assert conv_lib._weight_grad_chunk_size(1000, 1000) == 32
    assert conv_lib._weight_grad_chunk_size(64, 1000) == 2
    assert conv_lib._weight_grad_chunk_size(33, 1000) == 2
    # Strided convs keep one chunk until the whole batch is large.
    monkeypatch.setattr(conv_lib, "_STRIDED_MIN_CHUNKED_BYTES", 3200)
    assert conv_lib._weight_grad_chunk_size(32, 100, stride=2) == 32
    assert conv_lib._weight_grad_chunk_size(33, 100, stride=2) == 8


def test_bfloat16_inputs_keep_their_dtype():
    x, w, b, _ = _inputs((2, 6, 6, 3, 4, 3, 1))

    def run(x, w, b):
        xb, wb, bb = (a.astype(jnp.bfloat16) for a in (x, w, b))
        loss = lambda x, w, b: jnp.sum(conv2d(x, w, b).astype(jnp.float32))
        ref = lambda x, w, b: jnp.sum(_reference(x, w, b, 1))
        return (conv2d(xb, wb, bb), jax.grad(loss, argnums=(0, 1, 2))(xb, wb, bb),
                jax.grad(ref, argnums=(0, 1, 2))(x, w, b))

    y, grads, ref = jax.jit(run)(x, w, b)
    assert y.dtype == jnp.bfloat16
    assert all(g.dtype == jnp.bfloat16 for g in grads)
    for got, want in zip(grads, ref):
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want),
                                   rtol=5e-2, atol=5e-2 * float(np.max(np.abs(want))))


@pytest.mark.parametrize(
    "x_shape, w_shape, b_shape, stride, match",
    [
        ((8, 8, 3), (3, 3, 3, 4), None, 1, "4-D NHWC"),
        ((1, 2, 8, 8, 3), (3, 3, 3, 4), None, 1, "4-D NHWC"),
        ((2, 8, 8, 3), (3, 3, 5, 4), None, 1, "channel mismatch"),
        ((2, 8, 8, 3), (2, 2, 3, 4), None, 1, "odd"),
        ((2, 8, 8, 3), (3, 1, 3, 4), None, 1, "square"),
        ((2, 8, 8, 3), (3, 3, 4), None, 1, "4-D HWIO"),
        ((2, 8, 8, 3), (3, 3, 3, 4), (5,), 1, "bias"),
        ((2, 8, 8, 3), (3, 3, 3, 4), None, 3, "stride"),
        ((2, 8, 8, 3), (3, 3, 3, 4), None, 0, "stride"),
    ],
)
def test_bad_inputs_raise_value_error(x_shape, w_shape, b_shape, stride, match):
    x = np.zeros(x_shape, np.float32)
    w = np.zeros(w_shape, np.float32)
    b = None if b_shape is None else np.zeros(b_shape, np.float32)
    with pytest.raises(ValueError, match=match):
        conv2d(x, w, b, stride=stride)


def _key(seed):
    # The 'rbg' PRNG compiles much faster on CPU than the default threefry,
    # which keeps these init tests fast; Flax treats both kinds of key alike.
    return jax.random.key(seed, impl="rbg")


def _flax_reference(features, k, stride, use_bias=True):
    p = k // 2
    return nn.Conv(features, (k, k), strides=stride, padding=((p, p), (p, p)), use_bias=use_bias)


@pytest.mark.parametrize("k, stride", [(3, 1), (3, 2), (1, 1)])
def test_module_matches_flax_conv(k, stride):
    x = np.random.default_rng(1).standard_normal((2, 8, 7, 3), np.float32)
    ours = Conv(5, kernel_size=k, stride=stride)
    theirs = _flax_reference(5, k, stride)

    def run(key, x):
        params = ours.init(key, x)
        ref_params = theirs.init(key, x)
        # Non-zero bias so the bias path is exercised too.
        shifted = jax.tree.map(lambda a: a + 0.1, params)
        loss = lambda m: lambda p: jnp.sum(jnp.sin(m.apply(p, x)))
        return (params, ref_params, ours.apply(shifted, x), theirs.apply(shifted, x),
                jax.grad(loss(ours))(shifted), jax.grad(loss(theirs))(shifted))

    params, ref_params, y, y_ref, grads, ref_grads = jax.jit(run)(_key(2), x)
    # Same names and shapes; same init functions and rng path give equal values.
    assert jax.tree.structure(params) == jax.tree.structure(ref_params)
    assert params["params"]["kernel"].shape == (k, k, 3, 5)
    assert params["params"]["bias"].shape == (5,)
    jax.tree.map(np.testing.assert_array_equal, params, ref_params)
    assert float(np.std(params["params"]["kernel"])) > 0.1
    _assert_close(y, y_ref)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        _assert_close(got, want)


def test_module_stride1_matches_flax_same_padding():
    x = np.random.default_rng(3).standard_normal((1, 6, 6, 2), np.float32)

    def run(key, x):
        params = Conv(4).init(key, x)
        return Conv(4).apply(params, x), nn.Conv(4, (3, 3), padding="SAME").apply(params, x)

    got, want = jax.jit(run)(_key(4), x)
    _assert_close(got, want)


def test_module_options():
    x = np.random.default_rng(5).standard_normal((1, 4, 4, 2), np.float32)

    def run(key, x):
        half = Conv(3, dtype=jnp.bfloat16)
        strided = Conv(3, kernel_size=(3, 3), stride=(2, 2))
        no_bias = Conv(3, use_bias=False)
        no_bias_params = no_bias.init(key, x)
        return {
            "no_bias_pair": (no_bias.apply(no_bias_params, x),
                             nn.Conv(3, (3, 3), padding="SAME", use_bias=False)
                             .apply(no_bias_params, x)),
            "zero": Conv(3, zero_init=True).init(key, x)["params"],
            "ones": Conv(3, kernel_init=nn.initializers.ones).init(key, x)["params"],
            "no_bias": Conv(3, use_bias=False).init(key, x)["params"],
            "strided": strided.apply(strided.init(key, x), x),
            "half": half.apply(half.init(key, x), x),
        }

    out = jax.jit(run)(_key(0), x)
    assert out["zero"]["kernel"].shape == (3, 3, 2, 3)
    assert not np.any(np.asarray(out["zero"]["kernel"]))
    assert np.all(np.asarray(out["ones"]["kernel"]) == 1.0)
    assert set(out["no_bias"]) == {"kernel"}
    _assert_close(*out["no_bias_pair"])
    assert out["strided"].shape == (1, 2, 2, 3)
    assert out["half"].dtype == jnp.bfloat16


def test_module_bad_inputs_raise_value_error():
    key = _key(0)
    good = np.ones((1, 8, 8, 2), np.float32)
    # eval_shape traces without compiling: the checks run at trace time.
    with pytest.raises(ValueError, match="odd"):
        jax.eval_shape(Conv(3, kernel_size=4).init, key, good)
    with pytest.raises(ValueError, match="stride"):
        jax.eval_shape(Conv(3, stride=3).init, key, good)
    with pytest.raises(ValueError, match="4-D NHWC"):
        jax.eval_shape(Conv(3).init, key, np.ones((8, 8, 2), np.float32))
    with pytest.raises(ValueError, match="kernel_size"):
        jax.eval_shape(Conv(3, kernel_size=(3, 1)).init, key, good)
    params = jax.eval_shape(Conv(3).init, key, good)
    with pytest.raises(ValueError, match="channel mismatch"):
        jax.eval_shape(Conv(3).apply, params, np.ones((1, 8, 8, 4), np.float32))


# (N, H, W, C_in, C_out): batch 1 and >1, H != W, odd sizes, C_in != C_out.
UPSAMPLE_SHAPES = [(1, 4, 4, 3, 5), (2, 3, 5, 4, 2), (3, 1, 2, 2, 3)]


@pytest.mark.parametrize("shape", UPSAMPLE_SHAPES)
def test_upsample_conv_is_conv_of_the_nearest_neighbour_upsampling(shape):
    n, h, w_, c_in, c_out = shape
    kx, kw, kb, kg = jax.random.split(jax.random.key(1), 4)
    x = jax.random.normal(kx, (n, h, w_, c_in))
    w = jax.random.normal(kw, (3, 3, c_in, c_out))
    b = jax.random.normal(kb, (c_out,))
    g = jax.random.normal(kg, (n, 2 * h, 2 * w_, c_out))
    # Independent of lax: numpy's repeat and the loop convolution.
    up = np.repeat(np.repeat(np.asarray(x, np.float64), 2, 1), 2, 2)
    want = _numpy_conv(up, np.asarray(w, np.float64), 1) + np.asarray(b, np.float64)
    np.testing.assert_allclose(conv_lib.upsample_conv2d(x, w, b), want, rtol=1e-5, atol=1e-4)

    @jax.jit
    def vjps(x, w, b, g):
        ref = lambda x, w, b: _reference(jnp.repeat(jnp.repeat(x, 2, 1), 2, 2), w, b, 1)
        return (jax.vjp(conv_lib.upsample_conv2d, x, w, b)[1](g), jax.vjp(ref, x, w, b)[1](g))

    ours, ref = vjps(x, w, b, g)
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-4)


def test_upsample_module_keeps_the_parameters_of_a_3x3_conv():
    from jaxgen.nets.layers import Upsample
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
    params = Upsample(5).init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, params) == {
        "params": {"conv": {"kernel": (3, 3, 3, 5), "bias": (5,)}}}
    y = Upsample(5).apply(params, x)
    p = params["params"]["conv"]
    np.testing.assert_allclose(
        y, conv2d(jnp.repeat(jnp.repeat(x, 2, 1), 2, 2), p["kernel"], p["bias"]),
        rtol=1e-5, atol=1e-5)
    assert Upsample(5).apply(params, x.astype(jnp.bfloat16)).dtype == jnp.float32
    with pytest.raises(ValueError, match="kernel must be 3x3"):
        conv_lib.upsample_conv2d(x, jnp.ones((5, 5, 3, 5)))
    with pytest.raises(ValueError, match="upsample=True needs stride 1"):
        Conv(5, 3, stride=2, upsample=True).init(jax.random.key(0), x)
