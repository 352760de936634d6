"""Pure VAE math: Gaussian latents, decoder likelihoods, the ELBO, the IWAE bound and
log-likelihood estimates. Imports jax, numpy and chex only (and the shared Gaussian
densities, input checks and per-example keys of ``jaxgen.diffusion``). Models are passed
as callables, so any network (Flax, Equinox, a closed form) plugs in; see ``bounds`` for
the calling convention."""

from jaxgen.vae.bounds import (ELBOTerms, bits_per_dim, elbo, iwae_bound,
                               log_likelihood_estimate, log_mean_exp, log_weight_fn, log_weights,
                               sample_keys, sample_latents)
from jaxgen.vae.latent import (gaussian_kl, gaussian_log_prob, reparameterize, sample_gaussian,
                               sum_per_example)
from jaxgen.vae.likelihoods import (LIKELIHOODS, MIN_LOG_SCALE, MIN_LOGVAR,
                                    bernoulli_log_likelihood, binarize, check_8bit, check_binary,
                                    decoder_log_likelihood, decoder_mean,
                                    discretized_logistic_log_likelihood, gaussian_log_likelihood,
                                    num_decoder_params)

__all__ = [
    "ELBOTerms", "LIKELIHOODS", "MIN_LOGVAR", "MIN_LOG_SCALE", "bernoulli_log_likelihood",
    "binarize", "bits_per_dim", "check_8bit", "check_binary", "decoder_log_likelihood",
    "decoder_mean", "discretized_logistic_log_likelihood", "elbo", "gaussian_kl",
    "gaussian_log_likelihood", "gaussian_log_prob", "iwae_bound", "log_likelihood_estimate",
    "log_mean_exp", "log_weight_fn", "log_weights", "num_decoder_params", "reparameterize",
    "sample_gaussian", "sample_keys", "sample_latents", "sum_per_example",
]
