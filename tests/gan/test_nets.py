"""The GAN players: DCGAN's guidelines, conditional batch norm, projection, AdaIN."""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.nets.adain import AdaIN, AdaINBlock, ConditionalBatchNorm, adain
from jaxgen.nets.dcgan import DCGANDiscriminator, DCGANGenerator, FractionallyStridedConv


def _paths(tree):
    return {"/".join(k): v for k, v in flax.traverse_util.flatten_dict(tree).items()}


def test_dcgan_generator_follows_the_guidelines():
    g = DCGANGenerator(out_shape=(28, 28, 1), channels=(16, 8))
    z = jax.random.normal(jax.random.key(0), (3, 10))
    variables = jax.jit(g.init)(jax.random.key(1), z)
    p = _paths(variables["params"])
    # z is projected to 7x7x16 (the only dense layer), then two fractionally strided
    # (transposed, stride 2) convolutions double the side: 7 -> 14 -> 28.
    assert p["project/kernel"].shape == (10, 7 * 7 * 16)
    assert sorted(k for k in p if k.endswith("kernel")) == ["out/kernel", "project/kernel",
                                                            "up_1/kernel"]
    assert p["up_1/kernel"].shape == (4, 4, 16, 8) and p["out/kernel"].shape == (4, 4, 8, 1)
    # batch norm after every layer but the output
    assert set(_paths(variables["batch_stats"])) == {"norm_0/mean", "norm_0/var",
                                                     "norm_1/mean", "norm_1/var"}
    x, new = jax.jit(lambda v, z: g.apply(v, z, train=True, mutable=["batch_stats"]))(
        variables, z)
    assert x.shape == (3, 28, 28, 1) and float(jnp.max(jnp.abs(x))) < 1.0  # tanh
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new["batch_stats"],
                           variables["batch_stats"])
    assert all(jax.tree.leaves(changed))  # training mode updates the running averages
    with pytest.raises(ValueError, match="divisible"):
        jax.eval_shape(DCGANGenerator(out_shape=(30, 30, 1), channels=(16, 8)).init,
                       jax.random.key(0), z)


def test_dcgan_discriminator_is_strided_convolutions_and_a_linear_read_out():
    d = DCGANDiscriminator(channels=(8, 16), norm="batch")
    x = jax.random.normal(jax.random.key(0), (4, 28, 28, 1))
    variables = jax.jit(d.init)(jax.random.key(1), x)
    p = _paths(variables["params"])
    kernels = sorted(k for k in p if k.endswith("kernel"))
    assert kernels == ["conv_0/kernel", "conv_1/kernel", "out/kernel"]
    # Two stride-2 convolutions (no pooling layers exist): 28 -> 14 -> 7, read out linearly.
    assert p["out/kernel"].shape == (7 * 7 * 16, 1)
    assert set(_paths(variables["batch_stats"])) == {"norm_1/mean", "norm_1/var"}  # not on input
    out, _ = jax.jit(lambda v, x: d.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, x)
    assert out.shape == (4,)
    # LeakyReLU: a negative pre-activation still passes gradient to the input everywhere.
    g = jax.jit(jax.grad(lambda v: jnp.sum(d.apply(variables, v))))(x)
    assert float(jnp.mean(jnp.abs(g) > 0)) > 0.99


def test_layer_norm_critic_treats_examples_independently():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    other = x.at[2:].set(jax.random.normal(jax.random.key(2), (2, 8, 8, 1)))
    d = DCGANDiscriminator(channels=(4, 8), norm="layer")
    v = jax.jit(d.init)(jax.random.key(1), x)
    apply = jax.jit(d.apply)
    np.testing.assert_allclose(apply(v, other)[:2], apply(v, x)[:2], atol=1e-5)
    bn = DCGANDiscriminator(channels=(4, 8), norm="batch")
    vb = jax.jit(bn.init)(jax.random.key(1), x)
    apply = jax.jit(lambda v, x: bn.apply(v, x, train=True, mutable=["batch_stats"])[0])
    a, b = apply(vb, x), apply(vb, other)
    assert float(jnp.max(jnp.abs(a[:2] - b[:2]))) > 1e-4  # batch norm does not


def test_spectral_norm_critic_divides_each_weight_by_its_largest_singular_value():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    d = DCGANDiscriminator(channels=(4, 8), norm="spectral")
    v = jax.jit(lambda k, x: d.init(k, x, train=True))(jax.random.key(1), x)
    assert set(v["params"]) == {"conv_0", "conv_1", "out"}  # same parameters as 'none'
    step = jax.jit(lambda v, x: d.apply(v, x, train=True, mutable=["batch_stats"])[1])
    for _ in range(30):  # one power iteration per training call
        v = {**v, **step(v, x)}
    stats = _paths(v["batch_stats"])
    scaled = {}
    for name, p in v["params"].items():
        w = np.asarray(p["kernel"])
        top = np.linalg.svd(w.reshape(-1, w.shape[-1]), compute_uv=False)[0]
        sigma = float(stats[f"sn_{name}/{name}/kernel/sigma"])
        assert sigma == pytest.approx(top, rel=1e-3), name
        scaled[name] = {**p, "kernel": p["kernel"] / sigma}
    # evaluation mode = the un-normalised critic with every kernel divided by sigma
    plain = DCGANDiscriminator(channels=(4, 8), norm="none")
    np.testing.assert_allclose(d.apply(v, x), plain.apply({"params": scaled}, x), rtol=1e-4,
                               atol=1e-5)
    assert float(jnp.max(jnp.abs(plain.apply({"params": v["params"]}, x) - d.apply(v, x)))) > 1e-3


def test_conditional_batch_norm_uses_the_class_affine_map():
    cbn = ConditionalBatchNorm(num_classes=3)
    x = 5.0 + 2.0 * jax.random.normal(jax.random.key(0), (64, 4, 4, 2))
    labels = jnp.full((64,), 2, jnp.int32)
    v = cbn.init(jax.random.key(1), x, labels, train=True)
    params = flax.core.unfreeze(v["params"])
    params["gamma"]["embedding"] = jnp.array([[1.0, 1.0], [1.0, 1.0], [3.0, 0.5]])
    params["beta"]["embedding"] = jnp.array([[0.0, 0.0], [0.0, 0.0], [-1.0, 2.0]])
    y, _ = cbn.apply({"params": params, "batch_stats": v["batch_stats"]}, x, labels,
                     train=True, mutable=["batch_stats"])
    y = np.asarray(y).reshape(-1, 2)
    np.testing.assert_allclose(y.mean(0), [-1.0, 2.0], atol=1e-4)    # beta^y
    np.testing.assert_allclose(y.std(0), [3.0, 0.5], rtol=1e-3)      # gamma^y
    y0, _ = cbn.apply({"params": params, "batch_stats": v["batch_stats"]}, x,
                      jnp.zeros((64,), jnp.int32), train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(y0).reshape(-1, 2).std(0), [1.0, 1.0], rtol=1e-3)


def test_projection_discriminator_adds_the_class_inner_product():
    d = DCGANDiscriminator(channels=(4, 8), norm="none", num_classes=3)
    x = jax.random.normal(jax.random.key(0), (5, 8, 8, 1))
    v = jax.jit(d.init)(jax.random.key(1), x, jnp.zeros((5,), jnp.int32))
    apply = jax.jit(d.apply)
    outs = [apply(v, x, jnp.full((5,), y, jnp.int32)) for y in range(3)]
    # f(x, y) - f(x, y') = <embed(y) - embed(y'), phi(x)>: linear in the embedding rows.
    params = flax.core.unfreeze(v["params"])
    emb = params["projection"]["embedding"]
    assert emb.shape == (3, 8)  # one weight per channel of the pooled last convolution
    params["projection"]["embedding"] = emb.at[2].set(2 * emb[1] - emb[0])
    out2 = apply({"params": params}, x, jnp.full((5,), 2, jnp.int32))
    np.testing.assert_allclose(out2 - outs[0], 2 * (outs[1] - outs[0]), rtol=1e-4, atol=1e-5)
    assert float(jnp.max(jnp.abs(outs[1] - outs[0]))) > 1e-3


def test_adain_sets_each_instance_channel_statistics():
    x = 3.0 + 4.0 * jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    scale = jnp.array([[1.0, 2.0, 0.5], [3.0, 1.0, 1.0]])
    bias = jnp.array([[0.0, -1.0, 4.0], [1.0, 2.0, 3.0]])
    y = np.asarray(adain(x, scale, bias))
    np.testing.assert_allclose(y.mean((1, 2)), bias, atol=1e-4)
    np.testing.assert_allclose(y.std((1, 2)), scale, rtol=1e-3)
    w = jax.random.normal(jax.random.key(1), (2, 5))
    layer = AdaIN()
    v = jax.jit(layer.init)(jax.random.key(2), x, w)
    y0 = np.asarray(jax.jit(layer.apply)(v, x, w))  # initialised to scale 1, bias 0
    np.testing.assert_allclose(y0.std((1, 2)), np.ones((2, 3)), rtol=1e-3)
    block = AdaINBlock(features=4)
    noise = jax.random.normal(jax.random.key(3), (2, 8, 8, 1))
    vb = jax.eval_shape(block.init, jax.random.key(4), x, w, noise)
    assert jax.eval_shape(block.apply, vb, x, w, noise).shape == (2, 8, 8, 4)
    with pytest.raises(ValueError, match="scale/bias"):
        adain(x, scale[:, :2], bias)


@pytest.mark.parametrize("features", [4, 16])  # the 3x3 four-phase form, four 2x2 convs
def test_fractionally_strided_conv_equals_the_transposed_convolution(features):
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
    layer = FractionallyStridedConv(features)
    v = jax.jit(layer.init)(jax.random.key(1), x)
    v = {"params": {"kernel": v["params"]["kernel"],
                    "bias": jax.random.normal(jax.random.key(2), (features,))}}
    ref = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME")
    y, y_ref = jax.jit(layer.apply)(v, x), jax.jit(ref.apply)(v, x)
    assert y.shape == (2, 10, 12, features)
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    cot = jax.random.normal(jax.random.key(3), y.shape)
    grads = jax.jit(lambda v, x: jax.vjp(layer.apply, v, x)[1](cot))(v, x)
    grads_ref = jax.jit(lambda v, x: jax.vjp(ref.apply, v, x)[1](cot))(v, x)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
        np.testing.assert_allclose(g, r, atol=1e-4, rtol=1e-4)
