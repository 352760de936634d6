"""Input checks shared by the public diffusion functions.

Every check runs at trace time and raises one ``ValueError`` that names the argument, the
offending value or shape, and what is allowed. Shapes and dtypes are static, so they are
always checked. Values are checked only when they are concrete (Python or NumPy scalars
and arrays, or a JAX array outside any trace): a traced value is skipped, so the checks
never force a host transfer inside ``jit`` and never change a compiled program.
"""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np


def concrete(x) -> Optional[np.ndarray]:
    """``x`` as a NumPy array when its value is known now, else None (a tracer)."""
    if isinstance(x, jax.core.Tracer):
        return None
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return None  # a multi-host array: its value is not on this host
    try:
        return np.asarray(x)
    except (TypeError, ValueError, jax.errors.TracerArrayConversionError,
            jax.errors.ConcretizationTypeError):
        return None


def _fmt(x) -> str:
    """A bound or value for a message: repr, shortened to 6 significant digits."""
    if isinstance(x, (float, np.floating)) and np.isfinite(x) and float(f"{x:.6g}") != x:
        return f"{x:.6g}"
    return repr(x.item() if isinstance(x, np.generic) else x)


def first_bad(values: np.ndarray, bad: np.ndarray) -> str:
    """The first offending entry, and how many there are, for the message."""
    flat_v, flat_b = values.reshape(-1), bad.reshape(-1)
    first = flat_v[np.argmax(flat_b)]
    count = int(flat_b.sum())
    more = f" (and {count - 1} more)" if count > 1 else ""
    return f"{_fmt(first)}{more}"


def check_range(name: str, x, lo: float, hi: float, *, where: str = "",
                lo_open: bool = False, hi_open: bool = False, slack: float = 0.0) -> None:
    """Raises if a concrete ``x`` has an entry outside [lo, hi] (or is NaN).

    ``slack`` widens the interval on both sides, so float32 rounding of a value computed
    to lie on a boundary (e.g. a grid's last time) is not an error.
    """
    v = concrete(x)
    if v is None or v.size == 0 or not np.issubdtype(v.dtype, np.number):
        return
    w = v.astype(np.float64)
    below = w <= lo - slack if lo_open else w < lo - slack
    above = w >= hi + slack if hi_open else w > hi + slack
    bad = below | above | np.isnan(w)
    if bad.any():
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{where}{name} must be in {left}{_fmt(lo)}, {_fmt(hi)}{right}, "
                         f"got {first_bad(v, bad)}")


def check_positive(name: str, x, *, allow_zero: bool = False, where: str = "") -> None:
    """Raises if a concrete ``x`` is not > 0 (>= 0 with ``allow_zero``)."""
    check_range(name, x, 0.0, math.inf, lo_open=not allow_zero, where=where)


def check_int(name: str, n, minimum: int = 1, maximum: Optional[int] = None) -> int:
    """``n`` as an int, if it is a Python or NumPy integer in [minimum, maximum]."""
    ok = isinstance(n, (int, np.integer)) and not isinstance(n, bool)
    if ok:
        ok = n >= minimum and (maximum is None or n <= maximum)
    if not ok:
        allowed = (f"an integer >= {minimum}" if maximum is None
                   else f"an integer in [{minimum}, {maximum}]")
        raise ValueError(f"{name} must be {allowed}, got {n!r}")
    return int(n)


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def check_float_array(name: str, x) -> None:
    """Images and noise are float arrays; uint8 or int images must be scaled first."""
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be a float array (images scaled to [-1, 1], e.g. "
                         f"x / 127.5 - 1 for uint8), got dtype {dtype}")


def check_batched(name: str, x) -> None:
    if jnp.ndim(x) < 1:
        raise ValueError(f"{name} must have a batch dimension (B, ...), got a scalar")


def check_same_shape(name: str, x, ref_name: str, ref) -> None:
    if jnp.shape(x) != jnp.shape(ref):
        raise ValueError(f"{name} must have the shape of {ref_name} {tuple(jnp.shape(ref))}, "
                         f"got {tuple(jnp.shape(x))}")


def check_coefficient(name: str, c, x_name: str, x) -> None:
    """A per-example coefficient (alpha, sigma, ...) must be a scalar or line up with x.

    A (B,) vector against x of shape (B, D) broadcasts along D, not along the batch, and
    silently gives wrong numbers when B == D; so a non-scalar coefficient must have the
    rank of x (e.g. (B, 1, 1, 1) for NHWC images).
    """
    if c is None:
        return
    shape, target = tuple(jnp.shape(c)), tuple(jnp.shape(x))
    if math.prod(shape) == 1 and len(shape) <= len(target):
        return
    fits = len(shape) == len(target) and all(a in (1, b) for a, b in zip(shape, target))
    if not fits:
        want = (target[0],) + (1,) * (len(target) - 1) if target else ()
        raise ValueError(f"{name} of shape {shape} does not line up with {x_name} of shape "
                         f"{target}: give a scalar or an array of rank {len(target)} that "
                         f"broadcasts to it, e.g. shape {want}")
