"""The VAE family: configs, refused configurations, a toy VAE that learns a density in
seconds, and a hierarchical IWAE through the loop, reload, evaluation and pictures."""

import importlib
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

import jaxgen
from jaxgen.data import toy
from jaxgen.errors import ConfigError
from jaxgen.train import loop, validation
from jaxgen.train import vae as vae_family

VAE_CONFIGS = ("vae_mnist", "iwae_mnist", "vae_conv_mnist", "vae_hierarchical_mnist",
               "beta_vae_mnist", "beta_vae_ldm_mnist", "vae_toy")


def get_config(name, arg=None):
    return importlib.import_module(f"configs.{name}").get_config(arg)


def test_configs_and_the_paper_setting():
    for name in VAE_CONFIGS:
        c = get_config(name)
        assert c.family == "vae"
        validation.validate(c)
    paper = get_config("vae_mnist", "paper")
    validation.validate(paper)
    assert (paper.data.split, paper.data.eval_split) == ("train", "test")
    assert (tuple(paper.vae.hidden_dims), paper.vae.latent_dim, paper.vae.activation) == (
        (200, 200), 50, "tanh")
    assert paper.train.num_steps * paper.train.batch_size == 3280 * 60_000
    assert get_config("iwae_mnist", "paper").vae.num_samples == 50


def _set(config, field, value):
    section, name = field.split(".")
    with config.unlocked():
        config[section][name] = value


@pytest.mark.parametrize("name, changes, field, message", [
    ("iwae_mnist", {"vae.beta": 4.0}, "vae.beta", "must be 1 with vae.num_samples=2"),
    ("vae_mnist", {"vae.likelihood": "poisson"}, "vae.likelihood", "'discretized_logistic'"),
    ("vae_mnist", {"vae.learn_variance": True}, "vae.learn_variance", "'gaussian' only"),
    ("vae_mnist", {"model.name": "unet"}, "model.name", "'vae_hierarchical'"),
    ("vae_conv_mnist", {"vae.conv_channels": ()}, "vae.conv_channels", "non-empty"),
    ("vae_mnist", {"vae.latent_dim": 0}, "vae.latent_dim", ">= 1"),
    ("vae_toy", {"vae.decoder_std": 0.0}, "vae.decoder_std", "(0.0"),
    ("vae_mnist", {"vae.activation": "gelu"}, "vae.activation", "'tanh'"),
])
def test_bad_vae_configs_are_refused_with_one_line(name, changes, field, message):
    config = get_config(name, "smoke")
    for k, v in changes.items():
        _set(config, k, v)
    with pytest.raises(ConfigError) as e:
        validation.validate(config)
    assert e.value.field == field and "\n" not in str(e.value)
    assert message in str(e.value), str(e.value)


@pytest.mark.parametrize("name, changes, shape, field, message", [
    ("vae_mnist", {"data.name": "toy:moons"}, (2,), "vae.likelihood", "use 'gaussian'"),
    ("beta_vae_ldm_mnist", {"vae.likelihood": "discretized_logistic", "data.name": "toy:rings"},
     (2,), "vae.likelihood", "8-bit images"),
    ("vae_conv_mnist", {}, (30, 30, 1), "vae.conv_channels", "divide the image size 30x30"),
    ("vae_conv_mnist", {"vae.likelihood": "gaussian"}, (2,), "model.name", "needs images"),
])
def test_data_the_likelihood_or_network_cannot_model(name, changes, shape, field, message):
    config = get_config(name, "smoke")
    for k, v in changes.items():
        _set(config, k, v)
    with pytest.raises(ConfigError) as e:
        validation.check_data_fits(config, shape)
    assert e.value.field == field and message in str(e.value), str(e.value)


def test_binarization_is_dynamic_in_training_and_fixed_in_evaluation():
    family = loop.make_family(get_config("vae_mnist", "smoke"), (4, 4, 1))
    x = jnp.linspace(-1, 1, 2 * 16).reshape(2, 4, 4, 1)
    a, b = family.eval_input(x), family.eval_input(x)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 1.0}
    steps = [family.model_input(x, jax.random.key(i)) for i in range(3)]
    assert not all(np.array_equal(steps[0], s) for s in steps[1:])


def test_toy_vae_learns_the_density_in_seconds(tmp_path):
    """After a few hundred steps the IWAE estimate of E log p(x) on 1024 points beats the
    best single Gaussian (-2.84 nats for unit-variance 2-D data) and stays below the true
    mixture's E log p_data (a model cannot exceed it; the estimate is a lower bound)."""
    config = get_config("vae_toy")
    config.train.num_steps = 500
    config.train.checkpoint_every = 500
    config.sampler.num_samples = 16
    workdir = str(tmp_path / "toy")
    loop.train(config, workdir, quiet=True)
    run = jaxgen.load(workdir)
    pipeline = loop.open_data(run.config)
    metrics = run.evaluate(pipeline, 4)                # 1024 points, IWAE k = 100
    x = np.concatenate([pipeline.batch(i)["x"] for i in range(4)])
    gaussian = -(1 + math.log(2 * math.pi))                     # -2.838
    true = float(np.mean(toy.log_prob("8gaussians", x)))        # about -1.4
    assert gaussian + 0.4 < -metrics["nll"] < true + 0.05, (metrics, true)
    assert metrics["nll"] < metrics["loss"]            # the IWAE bound is above the ELBO
    samples = run.sample(jax.random.key(1), 16)
    assert samples.shape == (16, 2) and np.all(np.isfinite(samples))
    grid = run.family.latent_grid(run.state.ema_params, 3)   # the 2-D latent's manifold
    assert grid.shape == (9, 2) and float(jnp.std(grid[:, 0])) > 0.1


def test_hierarchical_iwae_through_the_loop_on_mock_mnist(tmp_path):
    config = get_config("iwae_mnist", "smoke")
    config.model.name = "vae_hierarchical"
    config.data.split = config.data.eval_split = "train"
    workdir = str(tmp_path / "hiwae")
    with tfds.testing.mock_data(num_examples=40):
        state = loop.train(config, workdir, quiet=True)
        pipeline = loop.open_data(config, config.data.eval_split)
    assert int(state.step) == config.train.num_steps
    run = jaxgen.load(workdir)
    metrics = run.evaluate(pipeline, 1)
    assert {"loss", "elbo", "reconstruction", "kl", "nll", "bits_per_dim"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    assert metrics["bits_per_dim"] == pytest.approx(metrics["nll"] / (784 * math.log(2)))
    samples = run.sample(jax.random.key(0), 4)
    # decoder means in [-1, 1], not binary noise
    assert samples.shape == (4, 28, 28, 1) and np.all(np.abs(samples) <= 1)
    assert len(np.unique(samples)) > 2
    images = np.asarray(pipeline.batch(0)["x"])
    images = np.concatenate([images] * (20 // len(images) + 1))
    written = vae_family.save_pictures(run.family, run.state.ema_params, images,
                                       str(tmp_path / "pictures"), jax.random.key(0),
                                       num_samples=4)
    assert [os.path.basename(p) for p in written] == [
        "samples.png", "reconstructions.png", "interpolation.png"]
    assert all(os.path.getsize(p) > 0 for p in written)


@pytest.mark.slow  # compiling the conv net's gradient costs ~7 s of the fast suite's budget
def test_conv_vae_with_discretized_logistic_on_8bit_images():
    config = get_config("beta_vae_ldm_mnist", "smoke")
    config.vae.likelihood = "discretized_logistic"
    validation.validate(config)
    family = loop.make_family(config, (8, 8, 1))
    x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1)) / 127.5 - 1,
                    jnp.float32)

    @jax.jit
    def run(rng):
        state = jax.jit(family.init)(rng)
        new, metrics = family.train_step(state, {"x": x}, rng)
        return metrics, family.sample(new.params, rng, 2)

    metrics, samples = run(jax.random.key(0))
    # -log P(bin) > 0 for every value (a bin probability is below 1)
    assert float(metrics["reconstruction"]) < 0 and np.isfinite(float(metrics["grad_norm"]))
    assert samples.shape == (2, 8, 8, 1) and np.all(np.abs(samples) <= 1)
