"""Label- and style-dependent normalisation layers of conditional generators.

* ``ConditionalBatchNorm`` (de Vries et al. 2017; Dumoulin et al. 2017; the lectures'
  "learn a separate scale and shift for each label y"): ``y = gamma^y x_hat + beta^y``
  with ``x_hat`` batch-normalised.
* ``adain`` / ``AdaIN`` (Huang & Belongie 2017; StyleGAN, Karras et al. 2019, eq. 1;
  the lectures' ``AdaIN(x, w, b)_i = w_i (x_i - mu(x)) / sigma(x) + b_i``): instance
  normalisation whose per-channel scale and shift are predicted from a style vector.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class ConditionalBatchNorm(nn.Module):
    """Batch normalisation with a class-specific affine map.

    ``x_hat`` is normalised with batch statistics in training and with the running
    averages (collection ``batch_stats``) otherwise; the affine parameters are rows of two
    embeddings: gamma (initialised to 1) and beta (initialised to 0).

    Attributes:
      num_classes: number of labels.
      momentum: running-average momentum.
    """

    num_classes: int
    momentum: float = 0.9
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x, labels, *, train: bool):
        """x: (B, ..., C); labels: (B,) int. Returns x's shape."""
        if labels.shape != (x.shape[0],):
            raise ValueError(f"labels must have shape ({x.shape[0]},), got {labels.shape}")
        c = x.shape[-1]
        x_hat = nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                             epsilon=self.epsilon, use_scale=False, use_bias=False,
                             name="norm")(x)
        gamma = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.ones,
                         name="gamma")(labels)
        beta = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.zeros,
                        name="beta")(labels)
        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
        return gamma.reshape(shape) * x_hat + beta.reshape(shape)


def adain(x, scale, bias, epsilon: float = 1e-5):
    """``scale * (x - mu(x)) / sigma(x) + bias`` with mu, sigma over the spatial axes of
    each example and channel (instance normalisation).

    Args:
      x: (B, H, W, C) features.
      scale, bias: (B, C) per-example, per-channel style.

    Returns:
      (B, H, W, C).
    """
    if x.ndim != 4 or scale.shape != (x.shape[0], x.shape[-1]) or bias.shape != scale.shape:
        raise ValueError(f"adain expects x (B, H, W, C) and scale/bias (B, C), got {x.shape}, "
                         f"{scale.shape}, {bias.shape}")
    mu = jnp.mean(x, axis=(1, 2), keepdims=True)
    var = jnp.var(x, axis=(1, 2), keepdims=True)
    x_hat = (x - mu) / jnp.sqrt(var + epsilon)
    return scale[:, None, None, :] * x_hat + bias[:, None, None, :]


class AdaIN(nn.Module):
    """AdaIN with the style's affine map A (StyleGAN's "A" boxes): ``w`` (B, S) -> scale
    and bias per channel, initialised to scale 1 (``1 + Dense``) and bias 0."""

    @nn.compact
    def __call__(self, x, w):
        """x: (B, H, W, C); w: (B, S). Returns (B, H, W, C)."""
        if w.ndim != 2 or w.shape[0] != x.shape[0]:
            raise ValueError(f"w must have shape ({x.shape[0]}, S), got {w.shape}")
        c = x.shape[-1]
        style = nn.Dense(2 * c, kernel_init=nn.initializers.zeros, name="affine")(w)
        return adain(x, 1.0 + style[:, :c], style[:, c:])


class AdaINBlock(nn.Module):
    """One synthesis block of StyleGAN (Karras et al. 2019, Fig. 1b): 3x3 conv, per-pixel
    noise scaled by a learned per-channel factor (B), LeakyReLU, AdaIN from ``w``.

    Attributes:
      features: output channels.
    """

    features: int

    @nn.compact
    def __call__(self, x, w, noise):
        """x: (B, H, W, C_in); w: (B, S); noise: (B, H, W, 1). Returns (B, H, W, features)."""
        if noise.shape != x.shape[:3] + (1,):
            raise ValueError(f"noise must have shape {x.shape[:3] + (1,)}, got {noise.shape}")
        h = nn.Conv(self.features, (3, 3), padding="SAME", name="conv")(x)
        strength = self.param("noise_strength", nn.initializers.zeros, (self.features,))
        h = nn.leaky_relu(h + strength * noise, 0.2)
        return AdaIN(name="adain")(h, w)
