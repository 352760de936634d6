"""2-D convolutions whose backward pass is tuned for XLA:CPU.

XLA:CPU lowers every convolution to one YNNPACK kernel. The forward pass and
the input gradient run near matmul speed there, but the weight gradient of a
3x3 convolution does not: it is a convolution whose "kernel" is the whole
output-gradient image, and its contraction runs over N*H*W positions. Once the
operands of that contraction no longer fit in the per-core cache (roughly
N*H*W*(C_in + C_out) > 2**19 floats) its throughput drops 2-3x, e.g. from
~105 to ~37 GFLOP/s for a 64->64 channel 3x3 conv at 32x32, batch 32.

``conv2d`` therefore carries a ``jax.custom_vjp``:

* forward: ``lax.conv_general_dilated`` (K > 1) or a plain 2-D matmul (K = 1);
* input gradient: XLA's own transposed convolution (already fast);
* weight gradient: the same XLA convolution, but applied to batch chunks small
  enough to stay in cache and summed. The chunks are unrolled in the graph on
  purpose: a convolution inside ``lax.scan``/``while`` runs ~50x slower on
  XLA:CPU.
* 1x1 kernels: forward and both gradients are single 2-D matmuls. XLA's
  weight gradient of a 1x1 ``lax`` convolution is ~5x slower, and its autodiff
  of the equivalent 4-D einsum inserts transposes that cost up to 2x.

Alternatives measured and rejected on XLA:CPU (2 cores, f32, batch 32): the
weight gradient as a sum of K*K shifted matmuls (16-59 GFLOP/s against XLA's
34-100), as one im2col GEMM (15-60), or either of them over a zero-separated
flat layout in which every tap is a contiguous row window (no better); the
forward pass and input gradient as im2col or shifted matmuls (up to 5x slower
than XLA at 32x32, within +-15% of it at 16x16 and 8x8). They all materialise
or transpose copies of the activations, and XLA:CPU's concatenates, transposes
and large fresh buffers cost more than the faster GEMMs save. Convolutions
inside ``lax.scan`` were ~50x slower, hence the unrolled chunks above.
See ``experiments/bench_conv.py`` for the timing harness.

All of the above was measured with XLA:CPU's default YNNPACK convolutions.
jaxgen's own programs are compiled with ``jaxgen.core.xla_options``, which hands
convolutions to XLA's multi-threaded Eigen path instead (about 2x faster on two
cores); there this custom VJP and plain autodiff gave the matched DDPM UNet's
train step within noise of each other (952 against 928 ms), so it is kept for
programs compiled without those options.
"""

import functools
import math
import operator
from typing import Any, Callable, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["Conv", "conv2d", "parity_conv2d", "upsample_conv2d"]

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")

# Bytes of one weight-gradient chunk's operands (input slice + output-gradient
# slice) above which XLA:CPU's weight-gradient convolution falls off a
# throughput cliff; measured on a 4 MiB-L2 core, where 2 MiB was the largest
# chunk that kept full speed for 32, 64 and 128 channels.
_WEIGHT_GRAD_CHUNK_BYTES = 2 * 1024 * 1024

# Strided (downsampling) weight gradients gained from chunking only for large
# batches: 2.6x for 64 channels at 32x32 (10 MiB of operands), nothing or a
# ~10% loss at 5 MiB and below. Below this size they keep XLA's single conv.
_STRIDED_MIN_CHUNKED_BYTES = 8 * 1024 * 1024

# Every chunk is one more convolution in the graph (~50 ms of XLA compile time
# each), so very large batches get bigger chunks rather than more of them; a
# chunk of 2-4x the byte budget still runs ~2x faster than the whole batch.
_MAX_WEIGHT_GRAD_CHUNKS = 32

Array = jax.Array


def _padding(kernel_size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Symmetric padding of K//2 on both spatial sides (PyTorch ``padding=K//2``)."""
    p = kernel_size // 2
    return ((p, p), (p, p))


def _plain_conv(x: Array, w: Array, stride: int) -> Array:
    """Reference XLA convolution with PyTorch-style symmetric padding.

    Args:
        x: input, shape (N, H, W, C_in).
        w: kernel, shape (K, K, C_in, C_out).
        stride: 1 or 2.

    Returns:
        Output of shape (N, H_out, W_out, C_out), H_out = (H + 2*(K//2) - K)//stride + 1.
    """
    # Explicit padding, not 'SAME': for stride 2 and even H, 'SAME' pads
    # (0, 1) whereas PyTorch's Conv2d(padding=1) pads (1, 1).
    return lax.conv_general_dilated(
        x, w, (stride, stride), _padding(w.shape[0]), dimension_numbers=_DIMENSION_NUMBERS
    )


def _weight_grad_chunk_size(batch: int, bytes_per_example: int, stride: int = 1) -> int:
    """Examples per weight-gradient chunk.

    Args:
        batch: N, the number of examples.
        bytes_per_example: bytes of one example's input plus output gradient.
        stride: the convolution's stride.

    Returns:
        Chunk size n in [1, batch]: N itself when the whole batch fits the
        budget, or is a strided conv below ``_STRIDED_MIN_CHUNKED_BYTES``
        (XLA's single convolution), else the largest power of two that
        fits, raised to the smallest power of two giving at most
        ``_MAX_WEIGHT_GRAD_CHUNKS`` chunks. Powers of two split the usual
        batch sizes into equal chunks; odd chunk sizes (e.g. 11, 11, 10)
        measured up to 1.5x slower.
    """
    if stride > 1 and batch * bytes_per_example <= _STRIDED_MIN_CHUNKED_BYTES:
        return batch
    fit = max(1, _WEIGHT_GRAD_CHUNK_BYTES // max(1, bytes_per_example))
    if fit >= batch:
        return batch
    n = 1 << (fit.bit_length() - 1)
    fewest = math.ceil(batch / _MAX_WEIGHT_GRAD_CHUNKS)
    if n < fewest:
        n = 1 << (fewest - 1).bit_length()
    return min(n, batch)


def _conv_weight_grad(x: Array, g: Array, w_shape: Sequence[int], stride: int) -> Array:
    """Weight gradient of ``_plain_conv``, computed over cache-sized batch chunks.

    Args:
        x: forward input, shape (N, H, W, C_in).
        g: output cotangent, shape (N, H_out, W_out, C_out).
        w_shape: kernel shape (K, K, C_in, C_out).
        stride: 1 or 2.

    Returns:
        Kernel cotangent of shape ``w_shape``, dtype of x.
    """
    batch = x.shape[0]
    per_example = (math.prod(x.shape[1:]) * x.dtype.itemsize
                   + math.prod(g.shape[1:]) * g.dtype.itemsize)
    n = _weight_grad_chunk_size(batch, per_example, stride)
    w_struct = jax.ShapeDtypeStruct(tuple(w_shape), x.dtype)
    total = None
    for start in range(0, batch, n):
        xc = x[start:start + n]
        gc = g[start:start + n]
        # The transpose of the (linear in w) convolution is exactly the
        # convolution XLA's autodiff emits; we only shrink its batch.
        (part,) = jax.linear_transpose(lambda w_, xc=xc: _plain_conv(xc, w_, stride), w_struct)(gc)
        # Accumulate chunk partials in at least f32 so that bf16 training does
        # not lose precision the unchunked convolution would have kept.
        part = part.astype(jnp.promote_types(part.dtype, jnp.float32))
        total = part if total is None else total + part
    return total.astype(x.dtype)


def _conv_input_grad(g: Array, w: Array, x_shape: Sequence[int], stride: int) -> Array:
    """Input gradient of ``_plain_conv`` (XLA's transposed convolution).

    Args:
        g: output cotangent, shape (N, H_out, W_out, C_out).
        w: kernel, shape (K, K, C_in, C_out).
        x_shape: forward input shape (N, H, W, C_in).
        stride: 1 or 2.

    Returns:
        Input cotangent of shape ``x_shape``.
    """
    x_struct = jax.ShapeDtypeStruct(tuple(x_shape), g.dtype)
    (dx,) = jax.linear_transpose(lambda x_: _plain_conv(x_, w, stride), x_struct)(g)
    return dx


def _subsample(x: Array, stride: int) -> Array:
    """Pixels a 1x1 kernel with this stride reads: shape (N, ceil(H/s), ceil(W/s), C)."""
    return x if stride == 1 else x[:, ::stride, ::stride, :]


def _conv_impl(x: Array, w: Array, b: Optional[Array], stride: int) -> Array:
    """Forward computation shared by the primal and the custom-VJP forward rule."""
    if w.shape[0] == 1:
        xs = _subsample(x, stride)
        n, h, wd, c = xs.shape
        # A 2-D matmul, not a 4-D einsum: XLA then needs no transposes.
        y = (xs.reshape(n * h * wd, c) @ w.reshape(c, -1)).reshape(n, h, wd, -1)
    else:
        y = _plain_conv(x, w, stride)
    if b is not None:
        y = y + b
    return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv(x: Array, w: Array, b: Optional[Array], stride: int) -> Array:
    return _conv_impl(x, w, b, stride)


def _conv_fwd(x, w, b, stride):
    # Residuals are exactly what XLA's autodiff keeps (x and w), so the custom
    # rule costs no extra memory.
    return _conv_impl(x, w, b, stride), (x, w, b is None)


def _conv_bwd(stride, residuals, g):
    x, w, no_bias = residuals
    db = None if no_bias else jnp.sum(g, axis=(0, 1, 2))
    if w.shape[0] == 1:
        xs = _subsample(x, stride)
        c, o = w.shape[2], w.shape[3]
        x2 = xs.reshape(-1, c)
        g2 = g.reshape(-1, o)
        dw = (x2.T @ g2).reshape(w.shape)
        dxs = (g2 @ w.reshape(c, o).T).reshape(xs.shape)
        if stride == 1:
            dx = dxs
        else:
            dx = jnp.zeros_like(x).at[:, ::stride, ::stride, :].set(dxs)
    else:
        dx = _conv_input_grad(g, w, x.shape, stride)
        dw = _conv_weight_grad(x, g, w.shape, stride)
    return dx, dw, db


_conv.defvjp(_conv_fwd, _conv_bwd)


def _check_inputs(x: Array, w: Array, b: Optional[Array], stride: Any) -> None:
    """Raises ValueError with a one-line reason for inputs conv2d cannot take."""
    if x.ndim != 4:
        raise ValueError(f"conv2d: x must be a 4-D NHWC array, got shape {tuple(x.shape)}")
    if w.ndim != 4:
        raise ValueError(f"conv2d: w must be a 4-D HWIO kernel, got shape {tuple(w.shape)}")
    k_h, k_w, c_in, c_out = w.shape
    if k_h != k_w:
        raise ValueError(f"conv2d: kernel must be square (K, K, C_in, C_out), got shape {tuple(w.shape)}")
    if k_h % 2 == 0 or k_h < 1:
        raise ValueError(f"conv2d: kernel size must be odd for symmetric 'SAME' padding, got K={k_h}")
    if x.shape[3] != c_in:
        raise ValueError(
            f"conv2d: channel mismatch: x has {x.shape[3]} channels (shape {tuple(x.shape)}) "
            f"but w expects C_in={c_in} (shape {tuple(w.shape)})")
    if b is not None and tuple(b.shape) != (c_out,):
        raise ValueError(f"conv2d: bias must have shape ({c_out},), got {tuple(b.shape)}")
    if isinstance(stride, bool) or stride not in (1, 2):
        raise ValueError(f"conv2d: stride must be 1 or 2, got {stride!r}")


def conv2d(x: Array, w: Array, b: Optional[Array] = None, *, stride: int = 1) -> Array:
    """2-D convolution with PyTorch-style 'SAME' padding and a fast backward pass.

    Equals ``lax.conv_general_dilated(x, w, (stride, stride), ((p, p), (p, p)))``
    with p = K // 2 in NHWC/HWIO layout, i.e. PyTorch ``Conv2d(K, stride,
    padding=K // 2)``; for stride 2 and even H the output is H/2.

    Args:
        x: input, shape (N, H, W, C_in), floating point.
        w: kernel, shape (K, K, C_in, C_out), K odd.
        b: optional bias, shape (C_out,).
        stride: 1 or 2.

    Returns:
        Output of shape (N, H_out, W_out, C_out) with H_out = (H - 1) // stride + 1
        (same for W), in the promoted dtype of x, w and b.

    Raises:
        ValueError: x is not 4-D, w is not a square odd 4-D kernel, channels of
            x and w disagree, b has the wrong shape, or stride is not 1 or 2.
    """
    # Cast outside the custom VJP so autodiff converts cotangents back to each
    # argument's own dtype.
    x, w, b = _checked_and_promoted(x, w, b, stride)
    return _conv(x, w, b, int(stride))


def _checked_and_promoted(x, w, b, stride):
    """x, w, b as arrays in their promoted floating dtype (float32 for integers), after
    ``_check_inputs``."""
    x = jnp.asarray(x)
    w = jnp.asarray(w)
    b = None if b is None else jnp.asarray(b)
    _check_inputs(x, w, b, stride)
    dtype = jnp.result_type(x, w, *(() if b is None else (b,)))
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = jnp.float32
    return x.astype(dtype), w.astype(dtype), None if b is None else b.astype(dtype)


def _fold_taps(w: Array, phase: int, axis: int) -> Array:
    """The two taps of a 3-tap kernel axis seen by output rows (or columns) of one parity
    after nearest-neighbour 2x upsampling: an even output row 2i reads input rows
    i-1, i, i (taps w0 | w1 + w2), an odd one 2i+1 reads i, i, i+1 (w0 + w1 | w2)."""
    w0, w1, w2 = (lax.index_in_dim(w, i, axis, keepdims=False) for i in range(3))
    taps = (w0, w1 + w2) if phase == 0 else (w0 + w1, w2)
    return jnp.stack(taps, axis=axis)


def upsample_conv2d(x: Array, w: Array, b: Optional[Array] = None) -> Array:
    """Nearest-neighbour 2x upsampling followed by a 3x3 convolution with padding 1.

    Equals ``conv2d(jnp.repeat(jnp.repeat(x, 2, 1), 2, 2), w, b)`` (the UNet's
    upsampling layer), computed without the upsampled image: each of the four output
    parities (even/odd row, even/odd column) is a 2x2 convolution of ``x`` itself whose
    taps are sums of the 3x3 kernel's (``_fold_taps``), and the four results are
    interleaved. That is 16 instead of 36 multiply-adds per output pixel and channel
    pair, on a 4x smaller input. Measured on 2 cores (64 channels, f32, XLA:CPU):
    forward at batch 16 5.3 -> 3.5 ms (16x16 -> 32x32) and 1.7 -> 1.0 ms (8x8 -> 16x16);
    forward + backward at batch 32 62.5 -> 11.2 ms and 12.8 -> 3.5 ms, alone; inside the
    matched DDPM UNet (two such layers) the train step went 900 -> 880 ms and the
    batch-16 forward 113 -> 108 ms (interleaved A/B in one process).

    Args:
        x: input, shape (N, H, W, C_in).
        w: kernel, shape (3, 3, C_in, C_out).
        b: optional bias, shape (C_out,).

    Returns:
        Output of shape (N, 2H, 2W, C_out), in the promoted dtype of x, w and b.

    Raises:
        ValueError: x is not 4-D, w is not (3, 3, C_in, C_out), or b has the wrong shape.
    """
    x, w, b = _checked_and_promoted(x, w, b, 1)
    if w.shape[0] != 3:
        raise ValueError(f"upsample_conv2d: the kernel must be 3x3, got {w.shape[0]}x{w.shape[1]}")
    rows = (_fold_taps(w, a, 0) for a in (0, 1))
    y = parity_conv2d(x, [[_fold_taps(wa, c, 1) for c in (0, 1)] for wa in rows])
    return y if b is None else y + b


def parity_conv2d(x: Array, kernels) -> Array:
    """A 2x upsampling linear map given per output parity: output pixel (2i + a, 2j + c)
    is the 2x2 convolution ``kernels[a][c]`` of ``x`` over input rows (i - 1, i) for
    a = 0 and (i, i + 1) for a = 1, and likewise for the columns (zero outside ``x``).

    Nearest-neighbour upsampling followed by a 3x3 convolution (``upsample_conv2d``) and
    DCGAN's 4x4 stride-2 transposed convolution (``jaxgen.nets.dcgan``) are both of this
    form; four 2x2 convolutions of the small input and one interleave cost less on
    XLA:CPU than convolving an upsampled or input-dilated image.

    Args:
        x: input, shape (N, H, W, C_in).
        kernels: 2 x 2 nested sequence of (2, 2, C_in, C_out) kernels, [row parity][column
            parity].

    Returns:
        Output of shape (N, 2H, 2W, C_out).
    """
    n, h, w, _ = x.shape
    pad = ((1, 0), (0, 1))  # even outputs reach one row up, odd ones one row down
    rows = [jnp.stack([lax.conv_general_dilated(x, kernels[a][c], (1, 1), (pad[a], pad[c]),
                                                dimension_numbers=_DIMENSION_NUMBERS)
                       for c in (0, 1)], axis=3)                     # (N, H, W, 2, C_out)
            for a in (0, 1)]
    return jnp.stack(rows, axis=2).reshape(n, 2 * h, 2 * w, -1)     # (N, H, 2, W, 2, C_out)


def _as_square(value: Union[int, Sequence[int]], name: str) -> int:
    """Accepts K or (K, K), as flax.linen.Conv does; returns K."""
    try:
        return operator.index(value)  # int, numpy integer, ...
    except TypeError:
        pass
    value = tuple(value)
    if len(value) != 2 or value[0] != value[1]:
        raise ValueError(f"Conv: {name} must be an int or a pair of equal ints, got {value!r}")
    return int(value[0])


class Conv(nn.Module):
    """Drop-in for ``flax.linen.Conv`` on NHWC inputs with symmetric 'SAME' padding.

    Parameters are 'kernel' of shape (K, K, C_in, features) and 'bias' of shape
    (features,), initialised like ``nn.Conv`` (LeCun normal, zeros), so
    checkpoints are interchangeable with ``nn.Conv(features, (K, K),
    strides=stride, padding=((K//2, K//2), (K//2, K//2)))``. For stride 1 that
    is the same as ``padding='SAME'``.

    Attributes:
        features: C_out.
        kernel_size: K or (K, K), K odd.
        stride: 1 or 2 (or the pair (s, s)).
        use_bias: whether to add a bias.
        zero_init: initialise the kernel to zeros (e.g. a residual block's last
            conv); overrides ``kernel_init``.
        kernel_init: kernel initializer.
        bias_init: bias initializer.
        dtype: computation dtype; None promotes input and parameter dtypes.
        param_dtype: parameter dtype.
        upsample: convolve the nearest-neighbour 2x upsampling of the input (K = 3,
            stride 1 only), computed by ``upsample_conv2d`` without building it.
    """

    features: int
    kernel_size: Union[int, Sequence[int]] = 3
    stride: Union[int, Sequence[int]] = 1
    use_bias: bool = True
    zero_init: bool = False
    kernel_init: Callable[..., Array] = nn.initializers.lecun_normal()
    bias_init: Callable[..., Array] = nn.initializers.zeros_init()
    dtype: Optional[Any] = None
    param_dtype: Any = jnp.float32
    upsample: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """Applies the convolution.

        Args:
            x: input, shape (N, H, W, C_in).

        Returns:
            Output of shape (N, H_out, W_out, features), H_out = (H - 1) // stride + 1.
        """
        k = _as_square(self.kernel_size, "kernel_size")
        stride = _as_square(self.stride, "stride")
        x = jnp.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"Conv: input must be a 4-D NHWC array, got shape {tuple(x.shape)}")
        if self.has_variable("params", "kernel"):
            # Flax would raise its own shape error from self.param; say what is wrong instead.
            c_in = self.get_variable("params", "kernel").shape[2]
            if c_in != x.shape[-1]:
                raise ValueError(f"Conv: channel mismatch: input has {x.shape[-1]} channels "
                                 f"but the kernel was built for {c_in}")
        init = nn.initializers.zeros_init() if self.zero_init else self.kernel_init
        kernel = self.param("kernel", init, (k, k, x.shape[-1], self.features), self.param_dtype)
        bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
                if self.use_bias else None)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        if self.upsample:
            if stride != 1:
                raise ValueError(f"Conv: upsample=True needs stride 1, got {stride}")
            return upsample_conv2d(x, kernel, bias)
        return conv2d(x, kernel, bias, stride=stride)
