"""Ancestral sampling of an autoregressive model: x_i ~ p(x_i | x_<i), one position at a
time in raster order, as one compiled ``lax.fori_loop`` over positions.

The model is any callable ``logits_fn(x) -> logits``: x (B, ...) integer values, logits
(B, ..., K) whose entry at position i depends on x_<i only (a PixelCNN, a causal
transformer, a table of known conditionals). Each step re-evaluates the whole model and
reads the logits of one position, which is why sampling an N x N image takes N^2
sequential network evaluations (the lectures: "very slow").

Randomness: position i uses ``fold_in(rng, i)`` and, inside it, example b uses
``fold_in(., b)``; so example b's sample does not depend on the batch size.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import chex
import jax
import jax.numpy as jnp

from jaxgen.core import checks
from jaxgen.core.rng import per_example_keys


def _check_settings(temperature, top_k, num_classes=None) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not temperature >= 0 or math.isinf(temperature):
        raise ValueError(f"temperature must be a finite number >= 0 (0: argmax), got "
                         f"{temperature!r}")
    checks.check_int("top_k", top_k, minimum=0, maximum=num_classes)


def filter_logits(logits: chex.Array, temperature: float = 1.0, top_k: int = 0) -> chex.Array:
    """Logits scaled by 1 / temperature, with all but the ``top_k`` largest per row set
    to -inf (``top_k`` = 0 keeps all; ties with the k-th largest are kept).

    Args:
      logits: (..., K).
      temperature: > 0 (this function does not take 0; ``sample`` treats 0 as argmax).
      top_k: 0 or an integer in [1, K].
    """
    k = jnp.shape(logits)[-1]
    _check_settings(temperature, top_k, k)
    if temperature == 0:
        raise ValueError("filter_logits: temperature must be > 0 (temperature 0 is argmax)")
    logits = jnp.asarray(logits, jnp.float32) / temperature
    if top_k and top_k < k:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits >= kth, logits, -jnp.inf)
    return logits


def pick(rng: chex.PRNGKey, logits: chex.Array, temperature: float = 1.0,
         top_k: int = 0) -> chex.Array:
    """One value per row of ``logits`` (B, K): argmax for temperature 0, else a draw from
    softmax(filter_logits(logits)) with example b's key ``fold_in(rng, b)``. Returns (B,)
    int32."""
    _check_settings(temperature, top_k, jnp.shape(logits)[-1])
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    filtered = filter_logits(logits, temperature, top_k)
    keys = per_example_keys(rng, jnp.shape(logits)[0])
    return jax.vmap(jax.random.categorical)(keys, filtered).astype(jnp.int32)


def sample(logits_fn: Callable[[chex.Array], chex.Array], rng: chex.PRNGKey, shape, *,
           temperature: float = 1.0, top_k: int = 0, init: Optional[chex.Array] = None,
           start: int = 0) -> chex.Array:
    """Draws x ~ prod_i p(x_i | x_<i) position by position (raster order over all
    non-batch axes), in one ``lax.fori_loop``.

    Args:
      logits_fn: ``x (B, *shape[1:]) int32 -> logits (B, *shape[1:], K)``, causal: the
        logits at position i depend on x_<i only.
      rng: base key; position i draws with ``fold_in(rng, i)``.
      shape: (B, ...) of the samples.
      temperature: softmax temperature; 0 takes the argmax (greedy decoding).
      top_k: sample among the k most likely values only; 0 = all.
      init: optional (B, ...) int values; positions < ``start`` are kept from it
        (completing partial examples), the rest are overwritten.
      start: first position to sample, in [0, prod(shape[1:])].

    Returns:
      (B, ...) int32 samples.
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"shape must be (B, ...) with at least one position, got {shape}")
    batch, num_positions = shape[0], math.prod(shape[1:])
    _check_settings(temperature, top_k)
    checks.check_int("start", start, minimum=0, maximum=num_positions)
    if init is None:
        x0 = jnp.zeros(shape, jnp.int32)
    else:
        if tuple(jnp.shape(init)) != shape:
            raise ValueError(f"init must have shape {shape}, got {tuple(jnp.shape(init))}")
        x0 = jnp.asarray(init).astype(jnp.int32)
    out = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct(shape, jnp.int32))
    if tuple(out.shape[:-1]) != shape:
        raise ValueError(f"logits_fn must map x {shape} to logits {shape + ('K',)}, got "
                         f"{tuple(out.shape)}")
    num_classes = out.shape[-1]
    checks.check_int("top_k", top_k, minimum=0, maximum=num_classes)

    def step(i, x):
        logits = logits_fn(x).reshape((batch, num_positions, num_classes))
        row = jax.lax.dynamic_index_in_dim(logits, i, axis=1, keepdims=False)
        value = pick(jax.random.fold_in(rng, i), row, temperature, top_k)
        flat = jax.lax.dynamic_update_index_in_dim(x.reshape((batch, num_positions)),
                                                   value[:, None], i, axis=1)
        return flat.reshape(shape)

    return jax.lax.fori_loop(start, num_positions, step, x0)
