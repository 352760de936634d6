"""The UNet backbone: shapes, parameter count of the matched config, conditioning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.nets import UNet, sinusoidal_embedding


def n_params(tree):
    return sum(x.size for x in jax.tree.leaves(tree))


def test_matched_config_has_the_reference_parameter_count():
    # diffusers UNet2DModel(block_out_channels=(32, 64, 64), layers_per_block=2,
    # AttnDownBlock2D in the middle, norm_num_groups=8, 1 channel) has 1,623,169 parameters.
    model = UNet(1, (32, 64, 64), (False, True, False), time_conditioning="add")
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 1)),
                            jnp.zeros((1,), jnp.int32))
    assert n_params(shapes) == 1_623_169
    # AdaGN doubles each residual block's time projection (17 blocks: 8 of 32, 9 of 64 ch)
    adagn = UNet(1, (32, 64, 64), (False, True, False), time_conditioning="adagn")
    shapes2 = jax.eval_shape(adagn.init, jax.random.key(0), jnp.zeros((1, 32, 32, 1)),
                             jnp.zeros((1,), jnp.int32))
    res_channels = [32] * 2 + [64] * 4 + [64] * 2 + [64] * 6 + [32] * 3
    assert n_params(shapes2) - n_params(shapes) == sum(128 * c + c for c in res_channels)


def test_output_shape_zero_init_and_time_dependence():
    model = UNet(3, (16, 32), (False, True), num_groups=4)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    t = jnp.array([3, 700])
    # jitted: op by op, a UNet's init and three applications take ~30 s on a CPU
    params = jax.jit(model.init)(jax.random.key(1), x, t)["params"]
    apply = jax.jit(model.apply)
    out = apply({"params": params}, x, t)
    assert out.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(out, 0.0)  # zero-initialised output conv
    # with a non-zero output layer, the prediction depends on t through AdaGN
    params = jax.tree.map(lambda p: p, params)
    params["conv_out"] = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), params["conv_out"])
    a = apply({"params": params}, x, jnp.array([3, 3]))
    b = apply({"params": params}, x, jnp.array([900, 900]))
    assert float(jnp.max(jnp.abs(a - b))) > 1e-3


def test_sinusoidal_embedding_values():
    e = sinusoidal_embedding(jnp.array([0.0, 1.0]), 8)
    assert e.shape == (2, 8)
    np.testing.assert_allclose(e[0], [1, 1, 1, 1, 0, 0, 0, 0], atol=1e-7)
    # first frequency is 1: cos(1), sin(1)
    np.testing.assert_allclose([e[1, 0], e[1, 4]], [np.cos(1.0), np.sin(1.0)], rtol=1e-6)


def test_bad_inputs():
    model = UNet(1, (8, 16, 16), (False, False, False), num_groups=4)
    with pytest.raises(ValueError, match="divisible by 4"):
        model.init(jax.random.key(0), jnp.zeros((1, 10, 10, 1)), jnp.zeros((1,), jnp.int32))
    with pytest.raises(ValueError, match="NHWC"):
        model.init(jax.random.key(0), jnp.zeros((1, 8, 8)), jnp.zeros((1,), jnp.int32))
    with pytest.raises(ValueError, match="t must have shape"):
        model.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)), jnp.zeros((1,), jnp.int32))
