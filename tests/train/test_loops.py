"""jaxgen.core.loops.scan: lax.scan's contract, unrolled into the program on request."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.core import loops


def _body(carry, x):
    i, v = x
    new = carry * 0.5 + jnp.sin(v) * i
    return new, {"out": new.sum(), "i": i}


def test_unrolled_scan_equals_lax_scan_and_has_no_loop():
    xs = (jnp.arange(4), jax.random.normal(jax.random.key(0), (4, 3)))
    init = jnp.ones(3)
    ref = jax.lax.scan(_body, init, xs)
    for unroll in (True, False):
        got = loops.scan(_body, init, xs, unroll=unroll)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    prims = lambda unroll: {e.primitive.name for e in jax.make_jaxpr(  # noqa: E731
        lambda c, x: loops.scan(_body, c, x, unroll=unroll))(init, xs).jaxpr.eqns}
    assert "scan" not in prims(True) and "scan" in prims(False)


def test_none_outputs_and_empty_inputs():
    carry, ys = loops.scan(lambda c, x: (c + x, None), 0.0, jnp.arange(5.0), unroll=True)
    assert float(carry) == 10.0 and ys is None
    with pytest.raises(ValueError, match="xs"):
        loops.scan(lambda c, x: (c, None), 0.0, (), unroll=True)
