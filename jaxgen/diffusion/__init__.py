"""Pure diffusion math: processes, targets, losses, samplers, guidance (jax + chex only)."""

# Shared with the other families (jaxgen.core), re-exported where diffusion users look.
from jaxgen.core.gaussians import (discretized_gaussian_log_likelihood,
                                   gaussian_log_likelihood, normal_kl)
from jaxgen.core.rng import initial_noise, per_example_keys
from jaxgen.diffusion.guidance import classifier_free_guidance, drop_labels, inpaint, sdedit
from jaxgen.diffusion.likelihood import (DECODERS, VARIANCES, hybrid_loss, model_mean_variance,
                                         posterior_mean_variance, prior_kl, variational_bound,
                                         vlb_terms)
from jaxgen.diffusion.losses import (TIME_SAMPLERS, WEIGHTINGS, denoising_loss, loss_weight,
                                     resolution_shift, shift_time, time_sampler)
from jaxgen.diffusion.processes import (PROCESSES, EDMProcess, RectifiedFlow, VEProcess,
                                        VPProcess, make_process)
from jaxgen.diffusion.grids import make_grid
from jaxgen.diffusion.samplers import (METHODS, ddim_sample, ddpm_sample, dpm_solver_pp_sample,
                                       euler_maruyama_sample, euler_sample, evaluations,
                                       heun_sample, pc_sample, prior_noise, sample)
from jaxgen.diffusion.schedules import (SCHEDULES, SPACINGS, DDPMProcess, cosine_beta_schedule,
                                        ddpm_process, karras_sigmas, linear_beta_schedule,
                                        q_sample, sigmoid_beta_schedule)
from jaxgen.diffusion.targets import (PREDICTIONS, convert, edm_precondition, target, to_eps,
                                      to_x0, to_x0_eps)

__all__ = [
    "DECODERS", "VARIANCES", "discretized_gaussian_log_likelihood", "gaussian_log_likelihood",
    "hybrid_loss", "model_mean_variance", "normal_kl", "posterior_mean_variance", "prior_kl",
    "variational_bound", "vlb_terms",
    "DDPMProcess", "EDMProcess", "METHODS", "PREDICTIONS", "PROCESSES", "RectifiedFlow",
    "SCHEDULES", "SPACINGS", "TIME_SAMPLERS", "VEProcess", "VPProcess", "WEIGHTINGS",
    "classifier_free_guidance", "convert", "cosine_beta_schedule", "ddim_sample",
    "ddpm_process", "ddpm_sample", "denoising_loss", "dpm_solver_pp_sample", "drop_labels",
    "edm_precondition", "euler_maruyama_sample", "euler_sample", "evaluations", "heun_sample",
    "initial_noise", "inpaint", "karras_sigmas", "linear_beta_schedule", "loss_weight",
    "make_grid", "make_process", "pc_sample", "per_example_keys", "prior_noise", "q_sample",
    "resolution_shift", "sample", "sdedit", "shift_time", "sigmoid_beta_schedule", "target",
    "time_sampler", "to_eps", "to_x0", "to_x0_eps",
]
