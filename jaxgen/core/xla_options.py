"""XLA compile options for the programs jaxgen compiles (train steps, samplers, metrics).

On XLA:CPU (jaxlib 0.10) three kinds of operation go to YNNPACK by default: single dots,
single convolutions and reductions (``xla_cpu_experimental_ynn_fusion_type``). YNNPACK's
convolutions run on one core, while XLA's other convolution path (Eigen's) uses the whole
intra-op thread pool. Measured on 2 cores, float32 (``experiments/bench.py``):

* a 3x3, 64->64 channel convolution at 32x32, batch 32: forward 16.5 -> 8.7 ms;
* the matched DDPM UNet (1.6M parameters, batch 32): train step 1,112 -> 941 ms, batch-16
  forward 147 -> 120 ms.

``options()`` therefore keeps YNNPACK's dots and reductions and gives convolutions back to
XLA's own CPU path. It adds nothing on other backends, and nothing where the user has set
``--xla_cpu_experimental_ynn_fusion_type`` in ``XLA_FLAGS`` (their choice stands). A
jaxlib that does not know the option (it is experimental) gets no options and one
warning instead of a failed compile.

For your own programs: ``jax.jit(fn, compiler_options=jaxgen.core.xla_options.options())``,
or ``xla_options.jit(fn, ...)``.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

_YNN_FIELD = "xla_cpu_experimental_ynn_fusion_type"
# The CPU default list without LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION.
_CPU = {_YNN_FIELD: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


def _user_sets_ynn() -> bool:
    return _YNN_FIELD in os.environ.get("XLA_FLAGS", "")


@functools.lru_cache(maxsize=None)
def _accepted(key: tuple) -> bool:
    """Whether this jaxlib compiles a trivial CPU program with the options ``key``."""
    cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
    try:
        jax.jit(jnp.negative, compiler_options=dict(key)).lower(
            jax.ShapeDtypeStruct((2,), jnp.float32, sharding=cpu)).compile()
        return True
    except Exception as e:  # an unknown option or enum value: XlaRuntimeError
        warnings.warn(f"jaxgen: XLA rejected the CPU compile options {dict(key)} ({e}); "
                      "compiling with XLA's defaults", RuntimeWarning, stacklevel=3)
        return False


def options(backend: Optional[str] = None, **extra: Any) -> Optional[dict]:
    """Compile options for a program on ``backend`` (default ``jax.default_backend()``),
    with ``extra`` options merged in; None when there are none.

    On CPU: YNNPACK for dots and reductions, XLA's multi-threaded path for convolutions
    (module doc), unless ``XLA_FLAGS`` already sets the YNNPACK list.
    """
    backend = backend or jax.default_backend()
    out = {}
    if backend == "cpu" and not _user_sets_ynn() and _accepted(tuple(sorted(_CPU.items()))):
        out.update(_CPU)
    out.update(extra)
    return out or None


def jit(fun: Callable, **kwargs) -> Callable:
    """``jax.jit(fun, **kwargs)`` compiled with ``options()`` (merged under any
    ``compiler_options`` given)."""
    given = kwargs.pop("compiler_options", None) or {}
    return jax.jit(fun, compiler_options=options(**given), **kwargs)
