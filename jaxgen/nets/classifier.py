"""A small convolutional classifier whose penultimate layer serves as a feature map.

It is the dataset-specific feature extractor of ``jaxgen.metrics.features``: trained on
the dataset itself (MNIST 28x28x1, the bundled 8x8x1 digits), its feature vector replaces
the InceptionV3 pool features of FID (Heusel et al. 2017) where ImageNet features say
little about the images (the common practice for MNIST-like data: the same statistics,
computed on a classifier trained on the dataset).

Design choices that matter for a feature map (not only for accuracy):

* no BatchNorm: features of one image must not depend on the other images in its batch,
  so features are identical whatever the batch size or device count;
* SiLU rather than ReLU: no unit can be exactly 0 on all inputs, so the feature
  covariance has full rank (on MNIST its eigenvalues span 0.07 to 319) and the Frechet
  distance is well conditioned.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxgen.nets.conv import Conv

__all__ = ["Classifier"]


class Classifier(nn.Module):
    """Conv stack -> Dense feature layer -> logits.

    The first conv keeps the resolution; every later one halves it (stride 2), so a
    28x28 input ends at 7x7 and an 8x8 input at 2x2 with the default three stages.

    Attributes:
      num_classes: size of the logits.
      channels: output channels of the 3x3 convolutions, one per stage.
      feature_dim: width of the penultimate (feature) layer.
    """

    num_classes: int = 10
    channels: Sequence[int] = (32, 64, 128)
    feature_dim: int = 128

    @nn.compact
    def __call__(self, x):
        """Classifies images.

        Args:
          x: float images (B, H, W, C) in [-1, 1].

        Returns:
          (logits (B, num_classes), features (B, feature_dim)); the features are the
          activations that the final linear layer reads.
        """
        if x.ndim != 4:
            raise ValueError(f"Classifier expects NHWC images (B, H, W, C), got shape {x.shape}")
        h = x
        for i, c in enumerate(self.channels):
            h = nn.silu(Conv(c, 3, stride=1 if i == 0 else 2, name=f"conv{i}")(h))
        h = h.reshape(h.shape[0], -1)
        features = nn.silu(nn.Dense(self.feature_dim, name="features")(h))
        logits = nn.Dense(self.num_classes, name="logits")(features)
        return logits, features.astype(jnp.float32)
