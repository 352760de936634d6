"""A ``lax.scan`` for loops whose body differentiates a network.

XLA:CPU runs convolution gradients inside a loop body several times slower than at the
top level of a program, even in a one-trip loop (a DCGAN critic's 4x4 stride-2 weight
gradient: 65 ms per call in a loop, ~9 ms for the whole forward and backward outside;
the digits UNet's step as two scanned micro-batches: 1,024 ms against 79 ms for the whole
batch). ``scan`` therefore unrolls such loops into the program on CPU and keeps a real
``lax.scan`` elsewhere, where the loop keeps the program small and only one iteration's
activations alive. Forward-only loops (the samplers) are not affected and use
``lax.scan`` directly.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp


def unroll_on_this_backend() -> bool:
    """True where training loops are unrolled: on CPU."""
    return jax.default_backend() == "cpu"


def scan(f: Callable, init, xs, *, unroll: Optional[bool] = None):
    """``jax.lax.scan(f, init, xs)``, unrolled into the program when ``unroll`` is true
    (default: ``unroll_on_this_backend()``).

    Same contract as ``lax.scan`` over a pytree ``xs`` with a leading axis: returns
    ``(final carry, ys stacked along a new leading axis)``; ``ys`` may be None.
    """
    if unroll is None:
        unroll = unroll_on_this_backend()
    if not unroll:
        return jax.lax.scan(f, init, xs)
    leaves = jax.tree.leaves(xs)
    if not leaves:
        raise ValueError("scan: xs must hold at least one array (its length is the loop's)")
    carry, ys = init, []
    for i in range(leaves[0].shape[0]):
        carry, y = f(carry, jax.tree.map(lambda v, i=i: v[i], xs))
        ys.append(y)
    return carry, jax.tree.map(lambda *v: jnp.stack(v), *ys)
