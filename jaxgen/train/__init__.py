"""Training: state, optimizers, sharding, checkpoints, the loop and one module per family."""

from jaxgen.train.diffusion import DiffusionFamily

FAMILIES = {"diffusion": DiffusionFamily}

__all__ = ["DiffusionFamily", "FAMILIES"]
