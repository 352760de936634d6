"""The autoregressive, VQ-VAE and VQ-prior families: configs, refused configurations, and
tiny runs through the generic loop on the bundled 8x8 digits (train, reload, exact NLL,
codebook statistics, samples); the command-line smoke runs of the four MNIST configs are
in the slow suite."""

import importlib
import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxgen
from jaxgen import autoregressive as ar
from jaxgen.errors import ConfigError
from jaxgen.train import loop, validation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def get_config(name, arg=None):
    return importlib.import_module(f"configs.{name}").get_config(arg)


def _set(config, field, value):
    section, name = field.split(".")
    with config.unlocked():
        config[section][name] = value


def _on_digits(config):
    config.data.name = "digits"
    config.data.split = "train"
    config.data.eval_split = "test"
    return config


def test_configs_validate_and_unknown_arguments_are_refused():
    for name, args in (("pixelcnn_mnist", ("", "256", "smoke", "smoke256")),
                       ("gated_pixelcnn_mnist", ("", "256", "smoke")),
                       ("vqvae_mnist", ("", "loss", "smoke")),
                       ("vqvae_prior_mnist", ("", "smoke"))):
        for arg in args:
            validation.validate(get_config(name, arg))
    assert get_config("pixelcnn_mnist", "256").ar.num_levels == 256
    assert get_config("gated_pixelcnn_mnist").model.name == "gated_pixelcnn"
    for name in ("pixelcnn_mnist", "gated_pixelcnn_mnist", "vqvae_mnist", "vqvae_prior_mnist"):
        with pytest.raises(ValueError, match="unknown config argument"):
            get_config(name, "big")


@pytest.mark.parametrize("name, changes, field, message", [
    ("pixelcnn_mnist", {"ar.num_levels": 1}, "ar.num_levels", ">= 2"),
    ("pixelcnn_mnist", {"ar.num_levels": 300}, "ar.num_levels", "[2, 256]"),
    ("pixelcnn_mnist", {"ar.kernel_size": 4}, "ar.kernel_size", "odd"),
    ("pixelcnn_mnist", {"ar.first_kernel_size": 1}, "ar.first_kernel_size", ">= 3"),
    ("pixelcnn_mnist", {"sampler.top_k": 3}, "sampler.top_k", "[0, 2]"),
    ("pixelcnn_mnist", {"sampler.temperature": -1.0}, "sampler.temperature", "[0.0"),
    ("pixelcnn_mnist", {"model.name": "unet"}, "model.name", "'gated_pixelcnn'"),
    ("vqvae_mnist", {"vq.codebook_update": "kmeans"}, "vq.codebook_update", "'ema'"),
    ("vqvae_mnist", {"vq.channels": ()}, "vq.channels", "non-empty"),
    ("vqvae_mnist", {"vq.ema_decay": 1.0}, "vq.ema_decay", "1.0)"),
    ("vqvae_mnist", {"vq.codebook_update": "loss"}, "vq.restart_threshold", "'ema' only"),
    ("vqvae_prior_mnist", {"prior.vqvae_workdir": ""}, "prior.vqvae_workdir",
     "trained family-'vqvae' run"),
    ("vqvae_prior_mnist", {"prior.embed_dim": 9}, "prior.embed_dim", "divisible"),
])
def test_bad_configs_are_refused_with_one_line(name, changes, field, message):
    config = get_config(name, "smoke")
    for k, v in changes.items():
        _set(config, k, v)
    with pytest.raises(ConfigError) as e:
        validation.validate(config)
    assert e.value.field == field and "\n" not in str(e.value)
    assert message in str(e.value), str(e.value)


@pytest.mark.parametrize("name, shape, field, changes", [
    ("pixelcnn_mnist", (8, 8, 3), "data.name", {}),
    ("vqvae_mnist", (10, 10, 1), "vq.channels", {}),
    ("vqvae_prior_mnist", (28, 28, 1), "prior.vqvae_workdir",
     {"prior.vqvae_workdir": "/nonexistent"}),
])
def test_data_the_models_cannot_take(name, shape, field, changes):
    config = get_config(name, "smoke")
    for k, v in changes.items():
        _set(config, k, v)
    with pytest.raises(ConfigError) as e:
        validation.check_data_fits(config, shape)
    assert e.value.field == field


def _quick(fn):
    """``fn`` (jitted) compiled without XLA's backend optimisations: tiny shapes run fast
    either way, and the init's unrolled PRNG calls compile ~4x faster (see loop.py)."""
    key = jax.random.key(0)
    return fn.lower(key).compile(compiler_options={"xla_backend_optimization_level": 0})


def test_pixelcnn_family_step_nll_and_samples_in_one_compile():
    """Binary PixelCNN family on 8x8 images: a train step, the exact NLL (untrained: near
    64 ln 2 nats), ancestral samples on {-1, 1}, and completion of given top rows."""
    config = get_config("pixelcnn_mnist", "smoke")
    family = loop.make_family(config, (8, 8, 1))
    x = jax.numpy.asarray(np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)), "float32")

    @jax.jit
    def run(rng):
        state = jax.jit(family.init)(rng)
        new, metrics = family.train_step(state, {"x": x}, rng)
        values = family.discretize(x)
        done = family.sample_values(new.params, rng, 2, init=values[:2].astype("int32"),
                                    start=32)
        return (metrics, family.evaluate(new.params, {"x": x}, rng),
                family.sample(new.params, rng, 2), values, done)

    metrics, evaluated, samples, values, done = _quick(run)(jax.random.key(0))
    assert 0.5 * 64 * math.log(2) < float(evaluated["nll"]) < 2 * 64 * math.log(2)
    assert float(evaluated["bits_per_dim"]) == pytest.approx(
        float(evaluated["nll"]) / (64 * math.log(2)), rel=1e-5)
    assert float(metrics["grad_norm"]) > 0
    assert samples.shape == (2, 8, 8, 1) and set(np.unique(samples)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(np.asarray(done)[:, :4], np.asarray(values)[:2, :4])


def test_vqvae_step_straight_through_and_ema_codebook():
    """One VQ-VAE step: with beta = 0 the encoder's gradient can only come through the
    straight-through estimator, and it is non-zero; the codebook takes no gradient and
    becomes m / N of the moving averages."""
    config = get_config("vqvae_mnist", "smoke")
    config.vq.commitment = 0.0
    family = loop.make_family(config, (8, 8, 1))
    x = jax.numpy.asarray(np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)), "float32")

    @jax.jit
    def run(rng):
        state = jax.jit(family.init)(rng)
        grads = jax.grad(lambda p: family.forward(p, x)[0].mean())(state.params)
        new, metrics = family.train_step(state, {"x": x}, rng)
        return state, grads, new, metrics, family.evaluate(new.params, {"x": x}, rng)

    state, grads, new, metrics, evaluated = _quick(run)(jax.random.key(0))
    encoder = [k for k in grads if k.startswith("down") or k == "to_code"]
    assert encoder and all(float(optax_norm(grads[k])) > 0 for k in encoder)
    np.testing.assert_array_equal(grads["codebook"], 0.0)
    ms = new.model_state
    np.testing.assert_allclose(new.params["codebook"],
                               ar.ema_codebook(ms["cluster_size"], ms["embed_sum"]),
                               rtol=1e-5)
    assert not np.allclose(new.params["codebook"], state.params["codebook"])
    assert float(np.sum(ms["cluster_size"])) > config.vq.num_codes   # 1 each + assignments
    assert 1.0 <= float(evaluated["perplexity"]) <= config.vq.num_codes
    assert int(metrics["dead_codes"]) + 1 <= config.vq.num_codes


def optax_norm(tree):
    return np.sqrt(sum(float(np.sum(np.square(v))) for v in jax.tree.leaves(tree)))


@pytest.mark.slow
def test_gated_pixelcnn_through_the_loop_gives_exact_nll_and_samples(tmp_path):
    config = _on_digits(get_config("gated_pixelcnn_mnist", "smoke256"))
    workdir = str(tmp_path / "ar")
    state = loop.train(config, workdir, quiet=True)
    assert int(state.step) == config.train.num_steps
    run = jaxgen.load(workdir)
    metrics = run.evaluate(loop.open_data(run.config, "test"), 1)
    # an untrained 256-way model: about log(256) nats per pixel, never more than ~2x that
    assert 0.5 * 64 * math.log(256) < metrics["nll"] < 2 * 64 * math.log(256)
    assert metrics["bits_per_dim"] == pytest.approx(metrics["nll"] / (64 * math.log(2)))
    samples = run.sample(jax.random.key(0), 2)
    assert samples.shape == (2, 8, 8, 1)
    levels = (samples + 1) * 127.5
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)   # on the 8-bit grid
    assert os.path.getsize(os.path.join(workdir, "samples.png")) > 0


@pytest.mark.slow
def test_vqvae_and_its_prior_through_the_loop(tmp_path):
    config = _on_digits(get_config("vqvae_mnist", "smoke"))
    vq_dir = str(tmp_path / "vq")
    state = loop.train(config, vq_dir, quiet=True)
    family = loop.make_family(config, (8, 8, 1))
    # the EMA codebook: params hold m / N of the moving averages in model_state
    ms = state.model_state
    np.testing.assert_allclose(state.params["codebook"],
                               ar.ema_codebook(ms["cluster_size"], ms["embed_sum"]),
                               rtol=1e-5)
    assert float(np.sum(ms["cluster_size"])) != pytest.approx(config.vq.num_codes)  # moved
    run = jaxgen.load(vq_dir)
    metrics = run.evaluate(loop.open_data(run.config, "test"), 1)
    assert {"reconstruction", "commitment", "perplexity", "dead_codes"} <= set(metrics)
    assert 1.0 <= metrics["perplexity"] <= config.vq.num_codes
    assert 0 <= metrics["dead_codes"] < config.vq.num_codes
    assert family.grid_shape == (2, 2)

    prior = _on_digits(get_config("vqvae_prior_mnist", "smoke"))
    prior.prior.vqvae_workdir = vq_dir
    validation.validate(prior)
    validation.check_data_fits(prior, (8, 8, 1))
    prior_dir = str(tmp_path / "prior")
    loop.train(prior, prior_dir, quiet=True)
    prun = jaxgen.load(prior_dir)
    pm = prun.evaluate(loop.open_data(prun.config, "test"), 1)
    assert 0 < pm["nll"] < 3 * 4 * math.log(config.vq.num_codes)    # 4 codes per image
    codes = np.asarray(jax.jit(prun.family.sample_codes, static_argnums=2)(
        prun.state.ema_params, jax.random.key(0), 3))
    assert codes.shape == (3, 2, 2) and codes.min() >= 0 and codes.max() < 8
    images = prun.sample(jax.random.key(0), 3)
    assert images.shape == (3, 8, 8, 1) and np.all(np.abs(images) <= 1)
    # the decoded samples are the VQ-VAE's decoding of the sampled codes
    np.testing.assert_allclose(images, run.family.decode_indices(run.state.ema_params, codes),
                               atol=1e-5)
    with pytest.raises(ConfigError, match="trained on"):
        validation.check_data_fits(prior, (16, 16, 1))
    prior.sampler.top_k = 9
    with pytest.raises(ConfigError, match="codebook size"):
        validation.check_data_fits(prior, (8, 8, 1))


@pytest.mark.slow
def test_command_line_smoke_runs_of_the_four_configs(tmp_path):
    """``python -m jaxgen.main`` trains, evaluates and samples each config's smoke run (on
    the bundled digits; the prior on top of the VQ-VAE smoke run)."""
    runs = [("pixelcnn_mnist.py:smoke", "pix", []),
            ("gated_pixelcnn_mnist.py:smoke256", "gated", []),
            ("vqvae_mnist.py:smoke", "vq", []),
            ("vqvae_prior_mnist.py:smoke", "prior",
             [f"--config.prior.vqvae_workdir={tmp_path / 'vq'}"])]
    digits = ["--config.data.name=digits", "--config.data.split=train",
              "--config.data.eval_split=test"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    for config, name, extra in runs:
        for mode in ("train", "eval", "sample"):
            cmd = [sys.executable, "-m", "jaxgen.main", f"--config=configs/{config}",
                   f"--workdir={tmp_path / name}", f"--mode={mode}", *digits, *extra]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env,
                                 timeout=600)
            assert out.returncode == 0, (config, mode, out.stderr[-2000:])
        assert os.path.getsize(tmp_path / name / "samples.png") > 0
        with open(tmp_path / name / "eval.json") as f:
            metrics = json.load(f)
        assert all(np.isfinite(v) for v in metrics.values() if isinstance(v, float))


@pytest.mark.slow
def test_pixelcnn_learns_digits(tmp_path):
    """300 steps of a small PixelCNN on binarized 8x8 digits: the held-out exact NLL falls
    well below its starting value (64 ln 2 = 44.4 nats for a model at p = 1/2)."""
    config = _on_digits(get_config("pixelcnn_mnist", "smoke"))
    config.ar.channels, config.ar.num_layers, config.ar.head_channels = 16, 2, 32
    config.train.num_steps, config.train.batch_size = 300, 32
    config.train.checkpoint_every = 300
    config.train.eval_batches = 4
    workdir = str(tmp_path / "learn")
    loop.train(config, workdir, quiet=True)
    run = jaxgen.load(workdir)
    metrics = run.evaluate(loop.open_data(run.config, "test"), 4)
    assert metrics["nll"] < 30.0, metrics
