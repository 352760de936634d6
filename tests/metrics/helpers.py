"""Shared test helpers: small untrained classifier extractors (no training needed)."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.metrics import classifier_extractor
from jaxgen.nets.classifier import Classifier

ARCH = dict(channels=(16, 32), feature_dim=32)


def random_params(model, shape, seed=0):
    """LeCun-normal kernels and zero biases drawn with numpy.

    Same distribution as the Classifier's own initialisers (up to their truncation), but
    built from ``jax.eval_shape``: nothing is compiled, which saves seconds per test and
    per subprocess.
    """
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1,) + shape))["params"]
    rng = np.random.default_rng(seed)

    def draw(s):
        if len(s.shape) == 1:
            return np.zeros(s.shape, np.float32)
        fan_in = int(np.prod(s.shape[:-1]))
        return (rng.standard_normal(s.shape) / np.sqrt(fan_in)).astype(np.float32)

    return jax.tree.map(draw, shapes)


def make_extractor(seed=0, shape=(8, 8, 1), name="classifier-digits"):
    """A FeatureExtractor of an untrained Classifier (16, 32 channels, 32 features)."""
    params = random_params(Classifier(**ARCH), shape, seed)
    return classifier_extractor(params, name=name, input_shape=shape, **ARCH)
