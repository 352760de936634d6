"""Softmax attention with a cache-blocked forward and backward for XLA:CPU.

``dot_product_attention(q, k, v)`` computes the same function as
``jax.nn.dot_product_attention(q, k, v)`` (no mask, no bias, scale 1/sqrt(D))
but is much faster on XLA:CPU for the small heads of a DDPM UNet (8 heads of
dim 8 over 256 positions, batch 32), where the score tensor (B, heads, T, T)
is 64 MiB and every elementwise pass over it is a trip to main memory.

It carries a ``jax.custom_vjp`` in the style of FlashAttention (Dao et al.
2022, Alg. 2 and 4): the (batch * heads) attention problems are processed in
chunks of a few MiB of scores instead of all at once, and the forward
pass keeps only the output and the row log-sum-exp ``lse`` for the backward
pass, which recomputes the probabilities ``P = exp(Q K^T * scale - lse)``
chunk by chunk. With dO the output cotangent and Delta = rowsum(dO * O):

  dV = P^T dO,   dS = P * (dO V^T - Delta),   dQ = dS K * scale,   dK = dS^T Q * scale.

Two XLA:CPU specifics shape the code:

* a matmul that contracts over the *leading* (non-contiguous) axis of a score
  matrix, such as P^T dO, ran ~3x slower than one contracting over its last
  axis. The backward therefore builds the key-major matrices P^T and dS^T
  directly from their own (cheap, D = 8 deep) matmuls instead of transposing,
  so every backward matmul contracts over contiguous axes; recomputing costs
  two extra rank-D products and one extra exp per score but was 1.6x faster
  than transposing or than contracting over the leading axis (51 against
  78-80 ms for the backward alone, B = 32, T = 256, 8 x 8 heads, measured
  under load).
* the chunks are a ``lax.map`` loop. Unlike convolutions (which slow down
  ~50x inside a loop on XLA:CPU), dots and fusions run at full speed there,
  and the loop keeps the compiled graph small. Two independent loops over
  the two halves of the chunks did not run concurrently on 2 cores, but two
  independent halves inside one iteration do: each iteration computes its
  chunk as two halves, which made the matched DDPM UNet's train step 7-8%
  faster (991 -> 925 and 1060 -> 974 ms, batch 32, two A/B runs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["dot_product_attention"]

Array = jax.Array

# Bytes of one chunk's score matrix (chunk * T_q * T_k float32s). At T = 256
# (B = 32, 8 heads) any budget from 512 KiB to 8 MiB ran within 10% (65-74 ms
# for forward + backward); what mattered was not spilling the whole 64 MiB
# (153 ms). Small problems want few loop iterations instead: at T = 64 the
# backward took 6.9 ms in 8 chunks, 4.3 ms in one. 4 MiB serves both.
_CHUNK_SCORE_BYTES = 4 * 1024 * 1024

# The inference forward pass (no gradient; the samplers' case) is faster in one piece: its
# ops then run on both cores (B = 16, T = 256: 8.1 -> 5.4 ms; B = 32: 16.5 -> 10.3 ms,
# any budget from 16 MiB up). The forward pass of a training step keeps the small chunks:
# in one piece there, the whole forward + backward ran 1.5x slower. Larger problems are
# still chunked, to bound memory.
_INFERENCE_SCORE_BYTES = 64 * 1024 * 1024


def _chunk_size(groups: int, tq: int, tk: int, budget: int) -> int:
    """Largest divisor of ``groups`` whose score chunk fits ``budget`` bytes.

    A divisor, so that every chunk of the ``lax.map`` has the same shape
    (no ragged tail); at least 1.
    """
    fit = max(1, budget // (4 * tq * tk))
    best = 1
    for c in range(1, min(fit, groups) + 1):
        if groups % c == 0:
            best = c
    return best


def _chunked(fn, *xs, budget: int | None = None):
    """Applies ``fn`` to chunks along axis 0 of every x and concatenates the results.

    Args:
        fn: maps arrays of shape (c, ...) to a tuple of arrays of shape (c, ...).
        *xs: arrays with the same leading size G; the first must be the
            (G, T_q, D) queries and the second the (G, T_k, D) keys.
        budget: bytes of one chunk's float32 score matrix (default
            ``_CHUNK_SCORE_BYTES``, the training budget).

    Returns:
        fn's outputs, reassembled to leading size G.
    """
    g, tq = xs[0].shape[:2]
    tk = xs[1].shape[1]
    c = _chunk_size(g, tq, tk, _CHUNK_SCORE_BYTES if budget is None else budget)
    if c == g:
        return fn(*xs)

    def body(a):
        # Two independent halves per iteration: XLA:CPU runs them side by side on two
        # cores (module doc).
        if c % 2:
            return fn(*a)
        h = c // 2
        lo, hi = fn(*(x[:h] for x in a)), fn(*(x[h:] for x in a))
        return tuple(jnp.concatenate(pair, axis=0) for pair in zip(lo, hi))

    out = lax.map(body, tuple(x.reshape(g // c, c, *x.shape[1:]) for x in xs))
    return tuple(y.reshape(g, *y.shape[2:]) for y in out)


def _forward_chunk(q: Array, k: Array, v: Array, scale: float):
    """Attention of one chunk.

    Args:
        q: (c, T_q, D); k, v: (c, T_k, D).
        scale: logit scale.

    Returns:
        o of shape (c, T_q, D) and lse = log sum_k exp(s) of shape (c, T_q, 1).
    """
    s = jnp.einsum("gqd,gkd->gqk", q * scale, k)
    m = jnp.max(s, axis=-1, keepdims=True)
    p = jnp.exp(s - m)
    l = jnp.sum(p, axis=-1, keepdims=True)
    # Normalise the (T_q, D) output rather than the (T_q, T_k) probabilities.
    o = jnp.einsum("gqk,gkd->gqd", p, v) / l
    return o, m + jnp.log(l)


def _backward_chunk(q, k, v, o, lse, do, scale: float):
    """Cotangents of one chunk (shapes as in ``_forward_chunk``; do like o)."""
    qs = q * scale
    delta = jnp.sum(do * o, axis=-1, keepdims=True)  # (c, T_q, 1)
    # Query-major: dQ = dS K.
    p = jnp.exp(jnp.einsum("gqd,gkd->gqk", qs, k) - lse)
    ds = p * (jnp.einsum("gqd,gkd->gqk", do, v) - delta)
    dq = jnp.einsum("gqk,gkd->gqd", ds, k) * scale
    # Key-major (recomputed, not transposed; see the module docstring):
    # dV = P^T dO and dK = dS^T (Q * scale).
    pt = jnp.exp(jnp.einsum("gkd,gqd->gkq", k, qs) - jnp.swapaxes(lse, 1, 2))
    dv = jnp.einsum("gkq,gqd->gkd", pt, do)
    dst = pt * (jnp.einsum("gkd,gqd->gkq", v, do) - jnp.swapaxes(delta, 1, 2))
    dk = jnp.einsum("gkq,gqd->gkd", dst, qs)
    return dq, dk, dv


@jax.custom_vjp
def _attention(q: Array, k: Array, v: Array) -> Array:
    scale = q.shape[-1] ** -0.5
    return _chunked(lambda *a: _forward_chunk(*a, scale)[:1], q, k, v,
                    budget=_INFERENCE_SCORE_BYTES)[0]


def _attention_fwd(q, k, v):
    scale = q.shape[-1] ** -0.5
    o, lse = _chunked(lambda *a: _forward_chunk(*a, scale), q, k, v)
    return o, (q, k, v, o, lse)


def _attention_bwd(residuals, do):
    q, k, v, o, lse = residuals
    scale = q.shape[-1] ** -0.5
    return _chunked(lambda *a: _backward_chunk(*a, scale), q, k, v, o, lse, do)


_attention.defvjp(_attention_fwd, _attention_bwd)


def dot_product_attention(q: Array, k: Array, v: Array) -> Array:
    """Multi-head softmax attention, equal to ``jax.nn.dot_product_attention(q, k, v)``.

    Args:
        q: queries, shape (B, T_q, H, D).
        k: keys, shape (B, T_k, H, D).
        v: values, shape (B, T_k, H, D).

    Returns:
        softmax(q k^T / sqrt(D)) v per batch element and head, shape (B, T_q, H, D),
        in the promoted dtype of q, k, v. Computed in at least float32.

    Raises:
        ValueError: shapes are not 4-D or disagree.
    """
    if q.ndim != 4 or k.shape != v.shape or k.ndim != 4 or (
            q.shape[0], q.shape[2], q.shape[3]) != (k.shape[0], k.shape[2], k.shape[3]):
        raise ValueError("dot_product_attention: expected q (B, T_q, H, D) and k, v "
                         f"(B, T_k, H, D); got {q.shape}, {k.shape}, {v.shape}")
    dtype = jnp.result_type(q, k, v)
    compute = jnp.promote_types(dtype, jnp.float32)
    b, tq, h, d = q.shape
    tk = k.shape[1]

    # (B, T, H, D) -> (B*H, T, D): every head becomes one independent problem.
    # The transposes sit outside the custom VJP, so autodiff transposes back.
    def heads_major(x, t):
        return jnp.transpose(x.astype(compute), (0, 2, 1, 3)).reshape(b * h, t, d)

    o = _attention(heads_major(q, tq), heads_major(k, tk), heads_major(v, tk))
    return jnp.transpose(o.reshape(b, h, tq, d), (0, 2, 1, 3)).astype(dtype)
