"""Causality of the PixelCNNs over whole images: the Jacobian of output pixel i with
respect to every input pixel j >= i (raster order) is exactly zero, for a mask-A layer, a
mask-B layer (which may see j = i), the masked PixelCNN and the gated stacks; and the gated
PixelCNN has no blind spot where the masked one does."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.nets import pixelcnn
from tests.nets.random_params import random_params

H = W = 6
N = H * W
X = jax.random.normal(jax.random.key(0), (1, H, W, 1))


def dependence(module, x=X):
    """(N, N) |d out_i / d x_j| summed over output channels, pixels in raster order."""
    params = random_params(module, x)
    jac = jax.jit(jax.jacobian(lambda v: module.apply(params, v).reshape(N, -1)))(x)
    return np.abs(np.asarray(jac)).reshape(N, -1, N).sum(axis=1)


def test_causal_masks():
    a = pixelcnn.causal_mask(3, "A")
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    b = pixelcnn.causal_mask(3, "B")
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    with pytest.raises(ValueError):
        pixelcnn.causal_mask(4, "A")


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_a_masked_layer_sees_only_earlier_pixels(mask_type):
    d = dependence(pixelcnn.MaskedConv(3, 5, mask_type))
    upper = np.triu(np.ones((N, N), bool), k=1)           # j > i
    assert (d[upper] == 0).all()
    diagonal = np.diag(d)
    if mask_type == "A":
        assert (diagonal == 0).all()
    else:
        assert (diagonal > 0).all()
    # and it does see its causal neighbourhood: the pixel to the left and the one above
    i = 3 * W + 3
    assert d[i, i - 1] > 0 and d[i, i - W] > 0


@functools.lru_cache(maxsize=None)
def _dependence_of(make):
    return dependence(make())


def _pixelcnn():
    return pixelcnn.PixelCNN(num_outputs=3, channels=8, num_layers=3, kernel_size=3,
                             first_kernel_size=3, head_channels=8)


def _gated():
    return pixelcnn.GatedPixelCNN(num_outputs=3, channels=8, num_layers=3, kernel_size=3,
                                  first_kernel_size=3, head_channels=8)


@pytest.mark.parametrize("make", [_pixelcnn, _gated], ids=["masked", "gated"])
def test_whole_networks_are_causal(make):
    d = _dependence_of(make)
    assert (d[np.triu_indices(N)] == 0).all()              # j >= i: exactly zero
    assert (d[np.tril_indices(N, -1)] > 0).any()


def test_the_gated_stacks_have_no_blind_spot():
    """Stacked masked convolutions never see the pixel one row up and two columns right
    (van den Oord et al. 2016b, Fig. 1): the vertical stack does."""
    i, j = 3 * W + 2, 2 * W + 4                           # (3, 2) and (2, 4)
    masked, gated = _dependence_of(_pixelcnn), _dependence_of(_gated)
    assert masked[i, j] == 0 and gated[i, j] > 0
    # with enough layers for the image, every earlier pixel is seen
    deep = pixelcnn.GatedPixelCNN(num_outputs=1, channels=8, num_layers=5, kernel_size=3,
                                  first_kernel_size=5, head_channels=8)
    d = dependence(deep, jax.random.normal(jax.random.key(2), (1, H, W, 1)))
    assert (d[np.tril_indices(N, -1)] > 0).all()
    assert (d[np.triu_indices(N)] == 0).all()


def test_output_shape_and_single_channel_only():
    model = _gated()
    params = random_params(model, X)
    assert jax.jit(model.apply)(params, X).shape == (1, H, W, 1, 3)
    with pytest.raises(ValueError, match="single-channel"):
        model.apply(params, jnp.zeros((1, H, W, 3)))
