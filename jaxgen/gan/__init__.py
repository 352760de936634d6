"""Pure GAN math (jax only): the players' losses, penalties, the optimal discriminator,
latent interpolation."""

from jaxgen.gan.latent import interpolate_latents
from jaxgen.gan.losses import (LOSSES, discriminator_loss, generator_loss,
                               hinge_discriminator_loss, hinge_generator_loss,
                               least_squares_discriminator_loss, least_squares_generator_loss,
                               minimax_discriminator_loss, minimax_generator_loss,
                               non_saturating_generator_loss, wasserstein_critic_loss,
                               wasserstein_generator_loss)
from jaxgen.gan.penalties import (clip_weights, gradient_penalty, interpolates,
                                  optimal_discriminator, r1_penalty)

__all__ = [
    "LOSSES", "clip_weights", "discriminator_loss", "generator_loss", "gradient_penalty",
    "hinge_discriminator_loss", "hinge_generator_loss", "interpolate_latents", "interpolates",
    "least_squares_discriminator_loss", "least_squares_generator_loss",
    "minimax_discriminator_loss", "minimax_generator_loss", "non_saturating_generator_loss",
    "optimal_discriminator", "r1_penalty", "wasserstein_critic_loss",
    "wasserstein_generator_loss",
]
