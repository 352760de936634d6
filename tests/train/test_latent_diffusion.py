"""Latent diffusion in the space of a trained autoencoder, and super-resolution
conditioned on a low-res image: configs and their refusals, the low-res operators
against hand-computed values, the conditioning reaching the network, and both end to
end through the loop on the bundled 8x8 digits."""

import importlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen
from jaxgen import data
from jaxgen.errors import ConfigError
from jaxgen.train import conditioning, latent, loop, validation
from jaxgen.train.autoencoder import first_images


def get_config(name, arg=None):
    return importlib.import_module(f"configs.{name}").get_config(arg)


def on_digits(c):
    c.data.name, c.data.split, c.data.eval_split, c.data.data_dir = "digits", "train", "test", None
    return c


def perturb(params, scale=0.1, seed=0):
    """Random values added to every leaf (an initialised UNet's last layer is zero, which
    would hide what reaches it)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: p + scale * rng.standard_normal(p.shape, np.float32), params)


@pytest.fixture(scope="module")
def autoencoder_dir(tmp_path_factory):
    """A tiny trained autoencoder run on the digits: f = 2, 8x8x1 -> 4x4x2."""
    c = on_digits(get_config("autoencoder_mnist", "smoke"))
    c.autoencoder.channels, c.autoencoder.latent_channels = (8, 8), 2
    c.autoencoder.num_res_blocks = 1
    c.autoencoder.disc_weight = 0.0
    c.train.num_steps = c.train.checkpoint_every = 2
    workdir = str(tmp_path_factory.mktemp("ldm") / "autoencoder")
    loop.train(c, workdir, quiet=True)
    return workdir


def fake_autoencoder_dir(tmp_path, shape=(8, 8, 1)):
    """What the config checks read of an autoencoder run (its config, its example shape,
    a checkpoint directory), without training one: f = 2, latent 4x4x2."""
    c = on_digits(get_config("autoencoder_mnist", "smoke"))
    c.autoencoder.channels, c.autoencoder.latent_channels = (8, 8), 2
    workdir = tmp_path / "fake_autoencoder"
    (workdir / "checkpoints" / "2").mkdir(parents=True)
    (workdir / "config.json").write_text(c.to_json_best_effort())
    (workdir / "run.json").write_text(json.dumps({"example_shape": list(shape)}))
    return str(workdir)


def ldm_config(autoencoder_dir):
    c = on_digits(get_config("ldm_mnist", "smoke"))
    c.latent.autoencoder_workdir = autoencoder_dir
    # the smallest UNet: one level, one block, no attention (a quick compile)
    c.model.block_channels, c.model.attention = (8,), (False,)
    c.model.layers_per_block, c.model.mid_attention = 1, False
    c.latent.scale_images = 200
    return c


# -- latent diffusion ----------------------------------------------------------------------


@pytest.mark.slow  # ~35 s: trains an autoencoder and a latent denoiser through the loop
def test_latent_diffusion_end_to_end(autoencoder_dir, tmp_path):
    config = ldm_config(autoencoder_dir)
    validation.validate(config)
    validation.check_data_fits(config, (8, 8, 1), 10)
    workdir = str(tmp_path / "ldm")
    state = loop.train(config, workdir, quiet=True)
    assert int(state.step) == config.train.num_steps
    assert os.path.getsize(os.path.join(workdir, "samples.png")) > 0

    run = jaxgen.load(workdir)
    family = run.family
    assert family.model_shape == (4, 4, 2) and family.data_shape == (8, 8, 1)
    # the denoiser sees latents: 2 input channels, 2 output channels
    assert state.params["conv_in"]["kernel"].shape[2] == 2
    assert state.params["conv_out"]["kernel"].shape[3] == 2
    samples = run.sample(jax.random.key(0), 4)           # decoded to pixel space
    assert samples.shape == (4, 8, 8, 1) and np.all(np.abs(samples) <= 1)

    # the scale factor is estimated once, recorded in the autoencoder's workdir, and
    # makes the latents the denoiser trains on unit-variance
    with open(os.path.join(autoencoder_dir, latent.SCALE_FILE)) as f:
        record = json.load(f)
    assert record["scale_factor"] == pytest.approx(family.latent.scale_factor)
    assert record["num_images"] == 200 and record["step"] == family.latent.step == 2
    images = jnp.asarray(first_images(config.data, "train", 200))
    z = jax.jit(family.latent.encode)(images, jax.random.key(7))
    assert float(jnp.std(z)) == pytest.approx(1.0, abs=0.05)

    # a given scale factor is used as it is: the same posterior samples, scaled by it,
    # and decoding divides it out again
    config.latent.scale_factor = 0.25
    space = latent.LatentSpace(config)
    assert space.scale_factor == 0.25

    @jax.jit
    def scaled(x, key):
        mean, _ = space.autoencoder.encode(space.params, x)
        return (space.encode(x, key), family.latent.encode(x, key), space.decode(0.25 * mean),
                jnp.clip(space.autoencoder.decode(space.params, mean), -1, 1))

    z_given, z_estimated, decoded, expected = scaled(images[:8], jax.random.key(0))
    np.testing.assert_allclose(z_given, 0.25 / family.latent.scale_factor * z_estimated,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(decoded, expected, atol=1e-6)


def test_bad_latent_setups_are_refused_with_one_line(tmp_path):
    autoencoder_dir = fake_autoencoder_dir(tmp_path)
    config = ldm_config(autoencoder_dir)
    validation.validate(config)                       # the good setup passes
    assert latent.check_autoencoder_run(config, (8, 8, 1)) == (4, 4, 2)

    def refused(config, shape=(8, 8, 1)):
        with pytest.raises(ConfigError) as e:
            validation.validate(config)
            validation.check_data_fits(config, shape, 10)
        assert "\n" not in str(e.value)
        return e.value

    c = ldm_config(str(tmp_path / "nowhere"))
    assert "no such directory" in str(refused(c))
    empty = tmp_path / "empty"
    empty.mkdir()
    e = refused(ldm_config(str(empty)))
    assert e.field == "latent.autoencoder_workdir" and "holds no jaxgen run" in str(e)
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    for name in ("config.json", "run.json"):
        (untrained / name).write_text(open(os.path.join(autoencoder_dir, name)).read())
    assert "has no checkpoint yet" in str(refused(ldm_config(str(untrained))))
    not_ae = tmp_path / "diffusion_run"
    not_ae.mkdir()
    (not_ae / "config.json").write_text(json.dumps({"family": "diffusion"}))
    (not_ae / "run.json").write_text(json.dumps({"example_shape": [8, 8, 1]}))
    assert "is a family='diffusion' run" in str(refused(ldm_config(str(not_ae))))
    e = refused(ldm_config(autoencoder_dir), shape=(28, 28, 1))
    assert "was trained on images of shape (8, 8, 1)" in str(e) and "(28, 28, 1)" in str(e)
    c = ldm_config(autoencoder_dir)
    c.model.block_channels, c.model.attention = (8, 8, 8, 8), (False,) * 4
    c.model.mid_attention = True
    e = refused(c)
    assert e.field == "model.block_channels" and "must divide the latent size 4x4" in str(e)
    c = ldm_config(autoencoder_dir)
    c.sampler.clip_x0 = 1.0
    assert refused(c).field == "sampler.clip_x0"
    c = ldm_config(autoencoder_dir)
    c.diffusion.condition = "low_res"
    assert refused(c).field == "diffusion.condition"
    c = ldm_config(autoencoder_dir)
    c.latent.scale_factor = -1.0
    assert refused(c).field == "latent.scale_factor"


# -- super-resolution ------------------------------------------------------------------------


def test_area_downsampling_and_upsampling_by_hand():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    low = conditioning.area_downsample(x, 2)
    # means of the 2x2 blocks [[0, 1], [4, 5]], [[2, 3], [6, 7]], ...
    np.testing.assert_allclose(low[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    near = conditioning.upsample(low, x.shape, "nearest")
    np.testing.assert_allclose(near[0, :, :, 0], np.kron([[2.5, 4.5], [10.5, 12.5]],
                                                         np.ones((2, 2))))
    # a constant image is its own low-res version and upsampling
    const = jnp.full((2, 8, 8, 1), 0.3)
    np.testing.assert_allclose(conditioning.condition_from_images(const, 4), const, atol=1e-6)
    with pytest.raises(ValueError, match="must divide"):
        conditioning.area_downsample(x, 3)


def sr_config():
    c = on_digits(get_config("sr_mnist", "smoke"))
    c.diffusion.low_res_size = 4
    return c


def test_sr_configs_and_refusals():
    validation.validate(get_config("sr_mnist"))
    c = sr_config()
    validation.validate(c)
    validation.check_data_fits(c, (8, 8, 1), 10)
    with pytest.raises(ConfigError, match="diffusion.low_res_size=3: must be smaller than the "
                                          "image height 8 and divide it"):
        c.diffusion.low_res_size = 3
        validation.check_data_fits(c, (8, 8, 1), 10)
    c = sr_config()
    c.diffusion.condition = "noise"
    with pytest.raises(ConfigError, match="diffusion.condition='noise'"):
        validation.validate(c)


def test_the_sr_network_receives_the_low_res_input():
    family = loop.make_family(sr_config(), (8, 8, 1))
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 1)), jnp.float32)
    # random parameters of the right shapes (no initialisation to compile); the first
    # convolution takes x_t and the upsampled low-res image: 2 channels
    shapes = jax.eval_shape(family.init, jax.random.key(0)).params
    assert shapes["conv_in"]["kernel"].shape[2] == 2
    params = perturb(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes))
    t = jnp.array([3, 10])

    @jax.jit
    def predict(cond):
        return family.model_fn(params, cond=cond)(x, t)

    images = jnp.asarray(first_images(family.config.data, "test", 4))
    a = predict(conditioning.condition_from_images(images[:2], 4))
    b = predict(conditioning.condition_from_images(images[2:], 4))
    assert float(jnp.max(jnp.abs(a - b))) > 1e-3     # another low-res input, another output
    np.testing.assert_array_equal(a, predict(conditioning.condition_from_images(images[:2], 4)))


@pytest.mark.slow  # ~30 s: compiles a training step and two samplers
def test_super_resolution_end_to_end(tmp_path):
    config = sr_config()
    workdir = str(tmp_path / "sr")
    loop.train(config, workdir, quiet=True)
    run = jaxgen.load(workdir)
    assert run.family.low_res == 4
    low = conditioning.area_downsample(jnp.asarray(first_images(config.data, "test", 3)), 4)
    out = jax.jit(run.family.super_resolve)(run.state.ema_params, low, jax.random.key(0))
    assert out.shape == (3, 8, 8, 1) and np.all(np.isfinite(out))
    with pytest.raises(ValueError, match=r"low_res must be \(B, 4, 4, 1\)"):
        conditioning.super_resolve(run.family, run.state.ema_params, jnp.zeros((1, 8, 8, 1)),
                                   jax.random.key(0))
    assert os.path.getsize(os.path.join(workdir, "samples.png")) > 0


@pytest.mark.slow  # ~4 minutes: 1500 steps, sampling and evaluation
def test_super_resolution_learns_to_beat_plain_upsampling(tmp_path):
    """After a short run on the digits (4x4 -> 8x8), the diffusion super-resolution of
    held-out digits has a higher PSNR than nearest-neighbour upsampling of the same low-res
    input, and writes the low-res | SR | truth picture."""
    config = sr_config()
    config.model.block_channels, config.model.attention = (32, 64), (False, True)
    config.diffusion.num_timesteps = 1000
    config.sampler.num_steps = 50
    config.train.num_steps = config.train.checkpoint_every = 1500
    config.train.batch_size = 32
    config.optim.learning_rate, config.optim.ema_decay = 1e-3, 0.995
    workdir = str(tmp_path / "sr")
    loop.train(config, workdir, quiet=True)
    run = jaxgen.load(workdir)
    pipeline = data.Pipeline(data.make_source("digits", "test"), 176, 0)
    metrics = run.evaluate(pipeline, 1)
    assert metrics["psnr_sr"] > metrics["psnr_nearest"], metrics
    path = conditioning.save_sr_picture(run.family, run.state.ema_params,
                                        first_images(config.data, "test", 10),
                                        str(tmp_path / "sr.png"), jax.random.key(0))
    assert os.path.getsize(path) > 0
