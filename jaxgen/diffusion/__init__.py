"""Pure diffusion math: processes, targets, losses and samplers (jax + chex only)."""

from jaxgen.diffusion.losses import denoising_loss, per_example_keys
from jaxgen.diffusion.samplers import METHODS, ddpm_sample, initial_noise, sample
from jaxgen.diffusion.schedules import (SCHEDULES, DDPMProcess, ddpm_process,
                                        linear_beta_schedule, q_sample)
from jaxgen.diffusion.targets import PREDICTIONS, target, to_eps, to_x0

__all__ = [
    "DDPMProcess", "METHODS", "PREDICTIONS", "SCHEDULES", "ddpm_process", "ddpm_sample",
    "denoising_loss", "initial_noise", "linear_beta_schedule", "per_example_keys", "q_sample",
    "sample", "target", "to_eps", "to_x0",
]
