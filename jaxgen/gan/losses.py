"""GAN objectives, split into the discriminator's and the generator's losses.

Every loss takes discriminator outputs *before* any sigmoid ("logits" for the
probabilistic losses, raw critic values for the others), shape (B,), and returns the
unreduced per-example values (B,); the caller averages. Minimising the returned value is
the player's goal in every case, so one optimizer convention serves all of them.

With ``D(x) = sigmoid(l(x))`` the minimax game of Goodfellow et al. 2014 (eq. 1, the
lectures' ``min_G max_D E[log D(x)] + E[log(1 - D(G(z)))]``) reads, per example,

* discriminator: ``-log D(x) - log(1 - D(G(z))) = softplus(-l_real) + softplus(l_fake)``
  (the negated value function, minimised);
* generator, saturating (the minimax game itself): ``log(1 - D(G(z))) = -softplus(l_fake)``;
* generator, non-saturating (Goodfellow et al. 2014, sec. 3; the lectures' fix):
  ``-log D(G(z)) = softplus(-l_fake)``.

Softplus forms are the numerically exact versions of those logs (no log(0)).

Others: Wasserstein (Arjovsky et al. 2017, eq. 3: critic ``f(G(z)) - f(x)``, generator
``-f(G(z))``), least squares (Mao et al. 2017, eq. 2 with a=0, b=1, c=1) and hinge
(Lim & Ye 2017; Miyato et al. 2018, eq. 16/17 of the SN-GAN paper).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["LOSSES", "discriminator_loss", "generator_loss", "minimax_discriminator_loss",
           "minimax_generator_loss", "non_saturating_generator_loss",
           "wasserstein_critic_loss", "wasserstein_generator_loss", "least_squares_discriminator_loss",
           "least_squares_generator_loss", "hinge_discriminator_loss", "hinge_generator_loss"]

# 'minimax': the saturating generator loss log(1 - D(G(z))); 'non_saturating': -log D(G(z))
# (both with the same discriminator loss); 'wgan': Wasserstein with weight clipping (the
# clipping is an optimizer transform, see jaxgen.train.gan); 'wgan_gp': Wasserstein + the
# gradient penalty; 'lsgan'; 'hinge'.
LOSSES = ("minimax", "non_saturating", "wgan", "wgan_gp", "lsgan", "hinge")


def _check(name: str, *arrays) -> None:
    shape = None
    for a in arrays:
        a = jnp.asarray(a)
        if a.ndim != 1 or not jnp.issubdtype(a.dtype, jnp.floating):
            raise ValueError(f"{name}: discriminator outputs must be float arrays of shape (B,), "
                             f"got {a.dtype}{tuple(a.shape)}")
        if shape is not None and a.shape != shape:
            raise ValueError(f"{name}: real and fake outputs must have the same shape, got "
                             f"{shape} and {tuple(a.shape)}")
        shape = a.shape


def minimax_discriminator_loss(real_logits, fake_logits):
    """``-log D(x) - log(1 - D(G(z)))`` with ``D = sigmoid(logits)`` (Goodfellow et al.
    2014, eq. 1 negated). Args: (B,) logits on real and generated examples. Returns (B,)."""
    _check("minimax_discriminator_loss", real_logits, fake_logits)
    return jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits)


def minimax_generator_loss(fake_logits):
    """The saturating generator loss ``log(1 - D(G(z))) = -softplus(l)`` (eq. 1): its
    gradient in ``l`` is ``-sigmoid(l) = -D(G(z))``, which vanishes as ``D(G(z)) -> 0``.
    Args: (B,) logits on generated examples. Returns (B,)."""
    _check("minimax_generator_loss", fake_logits)
    return -jax.nn.softplus(fake_logits)


def non_saturating_generator_loss(fake_logits):
    """``-log D(G(z)) = softplus(-l)`` (Goodfellow et al. 2014, sec. 3): gradient
    ``-(1 - D(G(z)))``, close to -1 exactly when the saturating one vanishes.
    Args: (B,) logits. Returns (B,)."""
    _check("non_saturating_generator_loss", fake_logits)
    return jax.nn.softplus(-fake_logits)


def wasserstein_critic_loss(real, fake):
    """``f(G(z)) - f(x)``: the negated Kantorovich-Rubinstein estimate of W_1
    (Arjovsky et al. 2017, eq. 3; the critic f must be kept Lipschitz by weight clipping or
    a gradient penalty). Args: (B,) critic values. Returns (B,)."""
    _check("wasserstein_critic_loss", real, fake)
    return fake - real


def wasserstein_generator_loss(fake):
    """``-f(G(z))`` (Arjovsky et al. 2017, Algorithm 1). Args: (B,). Returns (B,)."""
    _check("wasserstein_generator_loss", fake)
    return -fake


def least_squares_discriminator_loss(real, fake):
    """``1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2`` (Mao et al. 2017, eq. 2 with a=0, b=1; D has
    a linear output). Args: (B,) outputs. Returns (B,)."""
    _check("least_squares_discriminator_loss", real, fake)
    return 0.5 * jnp.square(real - 1.0) + 0.5 * jnp.square(fake)


def least_squares_generator_loss(fake):
    """``1/2 (D(G(z)) - 1)^2`` (Mao et al. 2017, eq. 2 with c=1). Args: (B,). Returns (B,)."""
    _check("least_squares_generator_loss", fake)
    return 0.5 * jnp.square(fake - 1.0)


def hinge_discriminator_loss(real, fake):
    """``max(0, 1 - D(x)) + max(0, 1 + D(G(z)))`` (Lim & Ye 2017; Miyato et al. 2018).
    Args: (B,) outputs. Returns (B,)."""
    _check("hinge_discriminator_loss", real, fake)
    return jax.nn.relu(1.0 - real) + jax.nn.relu(1.0 + fake)


def hinge_generator_loss(fake):
    """``-D(G(z))`` (Miyato et al. 2018). Args: (B,). Returns (B,)."""
    _check("hinge_generator_loss", fake)
    return -fake


_D = {"minimax": minimax_discriminator_loss, "non_saturating": minimax_discriminator_loss,
      "wgan": wasserstein_critic_loss, "wgan_gp": wasserstein_critic_loss,
      "lsgan": least_squares_discriminator_loss, "hinge": hinge_discriminator_loss}
_G = {"minimax": minimax_generator_loss, "non_saturating": non_saturating_generator_loss,
      "wgan": wasserstein_generator_loss, "wgan_gp": wasserstein_generator_loss,
      "lsgan": least_squares_generator_loss, "hinge": hinge_generator_loss}


def discriminator_loss(name: str, real, fake):
    """The discriminator's (critic's) per-example loss of the objective ``name`` (one of
    ``LOSSES``), without penalties. Args: (B,) outputs on real and generated examples.
    Returns (B,)."""
    if name not in _D:
        raise ValueError(f"unknown GAN loss {name!r}; one of {', '.join(LOSSES)}")
    return _D[name](real, fake)


def generator_loss(name: str, fake):
    """The generator's per-example loss of the objective ``name`` (one of ``LOSSES``).
    Args: (B,) discriminator outputs on generated examples. Returns (B,)."""
    if name not in _G:
        raise ValueError(f"unknown GAN loss {name!r}; one of {', '.join(LOSSES)}")
    return _G[name](fake)
