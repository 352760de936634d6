"""The KL autoencoder's and the patch discriminator's shapes (abstract evaluation only:
nothing is compiled)."""

import jax
import jax.numpy as jnp
import pytest

from jaxgen.nets.autoencoder import KLAutoencoder, PatchDiscriminator


def _shapes(model, x_shape):
    x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    mean, logvar = jax.eval_shape(model.apply, variables, x)
    z = jax.ShapeDtypeStruct(mean.shape, jnp.float32)
    out = jax.eval_shape(lambda v, z: model.apply(v, z, method="decode"), variables, z)
    return mean.shape, logvar.shape, out.shape


@pytest.mark.parametrize("channels, latent_channels, image, latent", [
    ((8,), 3, (8, 8, 1), (8, 8, 3)),                 # f = 1
    ((8, 16), 4, (8, 8, 1), (4, 4, 4)),              # f = 2
    ((8, 16, 16), 4, (28, 28, 1), (7, 7, 4)),        # f = 4: MNIST -> 7 x 7 x C
    ((8, 8, 16, 16), 16, (32, 32, 3), (4, 4, 16)),   # f = 8, C = 16 (the lectures' D, C)
])
def test_latent_shape_follows_the_factor_and_channels(channels, latent_channels, image, latent):
    model = KLAutoencoder(out_channels=image[-1], channels=channels,
                          latent_channels=latent_channels)
    assert model.downsample_factor == 2 ** (len(channels) - 1)
    mean, logvar, out = _shapes(model, (2,) + image)
    assert mean == logvar == (2,) + latent
    assert out == (2,) + image


def test_image_size_the_factor_does_not_divide_is_refused():
    model = KLAutoencoder(out_channels=1, channels=(8, 8, 8, 8))   # f = 8
    with pytest.raises(ValueError, match="28x28 must be divisible by the downsampling factor 8"):
        _shapes(model, (1, 28, 28, 1))


@pytest.mark.parametrize("channels, image, patches", [
    ((8,), (8, 8, 1), (4, 4)), ((8, 16), (28, 28, 1), (7, 7)), ((8, 16, 32), (32, 32, 3), (4, 4))])
def test_patch_discriminator_gives_one_logit_per_patch(channels, image, patches):
    model = PatchDiscriminator(channels=channels)
    x = jax.ShapeDtypeStruct((3,) + image, jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    assert jax.eval_shape(model.apply, variables, x).shape == (3,) + patches
