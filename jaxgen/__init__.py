"""jaxgen: deep generative models in JAX/Flax.

Pure math lives in ``jaxgen.diffusion`` (losses, processes, samplers); Flax backbones
in ``jaxgen.nets``; training in ``jaxgen.train``; data in ``jaxgen.data``.
``jaxgen.load(workdir)`` restores a trained run for sampling.
"""

from jaxgen.errors import ConfigError, DataError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "Run", "load", "__version__"]


def __getattr__(name):
    # Lazy: importing the pure math (jaxgen.diffusion) should not pull in flax, orbax, tfds.
    if name in ("load", "Run"):
        from jaxgen import api
        return getattr(api, name)
    raise AttributeError(f"module 'jaxgen' has no attribute {name!r}")
