"""Random parameters for a Flax module without compiling its ``init``: the shapes come
from ``jax.eval_shape`` (tracing only) and the values from NumPy. Compiling a network's
``init`` on XLA:CPU (its unrolled PRNG calls) costs seconds; structural tests such as
causality only need some generic weights."""

import jax
import numpy as np


def random_params(module, *args, seed: int = 0):
    """Variables of ``module.init(key, *args)``'s structure: kernels ~ N(0, 1 / fan_in),
    LayerNorm scales 1, every other vector ~ N(0, 0.1^2) (non-zero biases, so no unit is
    exactly dead by construction)."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(module.init, jax.random.key(0), *args)

    def fill(path, s):
        name = str(path[-1])
        if len(s.shape) >= 2:
            return (rng.normal(size=s.shape) / np.sqrt(np.prod(s.shape[:-1]))).astype(s.dtype)
        if "scale" in name:
            return np.ones(s.shape, s.dtype)
        return (0.1 * rng.normal(size=s.shape)).astype(s.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)
