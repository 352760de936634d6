"""The DiT backbone in the diffusion family: config checks, a train step and guided
sampling through the family, and FSDP equal to data parallelism."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dit_mnist
from jaxgen.errors import ConfigError
from jaxgen.nets import DiT
from jaxgen.train import loop, validation
from tests.train.test_multihost import devices, losses, run_meta
from tests.train.test_end_to_end import run_cli


def digits_config(**changes):
    """configs/dit_mnist.py:smoke on the bundled 8x8 digits (no files needed)."""
    c = dit_mnist.get_config("smoke")
    c.data.name, c.data.split, c.data.eval_split = "digits", "train", "test"
    c.model.patch_size = 2
    for key, value in changes.items():
        section, field = key.split(".")
        c[section][field] = value
    return c


@pytest.mark.parametrize("changes, field, message", [
    ({"model.hidden_size": 30}, "model.hidden_size", "divisible by 4"),
    ({"model.num_heads": 3}, "model.hidden_size", "model.num_heads (3)"),
    ({"model.dit_size": "M"}, "model.dit_size", "'S', 'B', 'L', 'XL'"),
    ({"model.patch_size": 0}, "model.patch_size", ">= 1"),
    ({"model.mlp_ratio": 0.0}, "model.mlp_ratio", "(0.0"),
])
def test_bad_dit_fields_are_refused_with_one_line(changes, field, message):
    with pytest.raises(ConfigError) as e:
        validation.validate(digits_config(**changes))
    assert e.value.field == field and message in str(e.value)
    assert "\n" not in str(e.value)


def test_the_patch_size_must_divide_the_image():
    config = digits_config(**{"model.patch_size": 3})
    validation.validate(config)  # the fields alone are fine
    with pytest.raises(ConfigError, match="must divide the image sides.*8, 8, 1"):
        validation.check_data_fits(config, (8, 8, 1), 10)
    with pytest.raises(ConfigError, match="needs images"):
        validation.check_data_fits(digits_config(), (2,), 10)
    validation.check_data_fits(digits_config(), (8, 8, 1), 10)


def test_a_dit_size_sets_the_paper_transformer():
    config = digits_config(**{"model.dit_size": "B", "model.patch_size": 4})
    validation.validate(config)
    model = loop.make_family(config, (32, 32, 4)).model
    assert isinstance(model, DiT)
    assert (model.depth, model.hidden_size, model.num_heads, model.patch_size) == (12, 768,
                                                                                    12, 4)


def test_dit_trains_and_samples_with_guidance_through_the_family():
    """One train step (label dropout on) and a guided Euler run of the rectified-flow
    family with a DiT; guidance combines the conditional and null-label predictions as
    (1 + w) v(x, y) - w v(x, null) (Ho & Salimans 2022)."""
    config = digits_config()
    validation.validate(config)
    family = loop.make_family(config, (8, 8, 1))
    assert isinstance(family.model, DiT) and family.num_classes == 10
    state = jax.jit(family.init)(jax.random.key(0))
    batch = {"x": jax.random.uniform(jax.random.key(1), (8, 8, 8, 1), minval=-1, maxval=1),
             "label": jnp.arange(8, dtype=jnp.int32) % 10}
    state, metrics = jax.jit(family.train_step)(state, batch, jax.random.key(2))
    assert int(state.step) == 1 and np.isfinite(float(metrics["loss"]))
    assert float(metrics["grad_norm"]) > 0

    # Trained one step from a zero output layer the label barely matters yet: perturb.
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda p: p + 0.1 * rng.standard_normal(p.shape, np.float32),
                          state.params)
    labels = family.sample_labels(5)
    x = jax.random.normal(jax.random.key(3), (5, 8, 8, 1))
    t = jnp.full((5,), 0.6)

    @jax.jit
    def outputs(params):
        return (family.model_fn(params, labels)(x, t),
                family.model_fn(params, jnp.full((5,), 10))(x, t),
                family.model_fn(params)(x, t),
                family.guided_model_fn(params, labels)(x, t),
                family.sample(params, jax.random.key(4), 5))

    cond, uncond, no_labels, guided, samples = outputs(params)
    assert float(jnp.max(jnp.abs(cond - uncond))) > 1e-3  # the label matters
    np.testing.assert_array_equal(no_labels, uncond)  # None = the null label
    w = config.sampler.guidance_weight
    assert w > 0 and config.diffusion.label_dropout > 0
    np.testing.assert_allclose(guided, (1 + w) * cond - w * uncond, rtol=1e-4, atol=1e-5)
    assert samples.shape == (5, 8, 8, 1) and np.all(np.isfinite(samples))


@pytest.mark.slow  # two command-line runs on 4 host devices (1-4 min)
def test_fsdp_dit_gives_the_losses_of_the_replicated_run(tmp_path):
    """configs/dit_mnist.py:smoke (on digits) with train.fsdp = 4 over 4 CPU devices: the
    state is split four ways and the losses equal the data-parallel run's."""
    args = ["--config=configs/dit_mnist.py:smoke", "--config.data.name=digits",
            "--config.data.split=train", "--config.data.eval_split=test",
            "--config.model.patch_size=2", "--config.model.hidden_size=64",
            "--config.train.num_steps=6", "--config.train.log_every=1",
            "--config.train.batch_size=16", "--config.eval.num_samples=0"]
    dirs = {}
    for fsdp in (1, 4):
        dirs[fsdp] = str(tmp_path / f"fsdp{fsdp}")
        r = run_cli(args + [f"--config.train.fsdp={fsdp}", f"--workdir={dirs[fsdp]}"],
                    env=devices(4))
        assert r.returncode == 0, r.stderr[-3000:]
    ref, sharded = losses(dirs[1]), losses(dirs[4])
    assert len(ref) == 6 and len(set(np.round(ref, 6))) > 1  # the losses move
    np.testing.assert_allclose(sharded, ref, rtol=2e-5)
    dp, fsdp = run_meta(dirs[1]), run_meta(dirs[4])
    assert dp["mesh"] == {"data": 4, "fsdp": 1} and fsdp["mesh"] == {"data": 1, "fsdp": 4}
    # The blocks' matrices (most of the state) are split; biases and norms are not.
    assert fsdp["state_bytes_per_device"] < 0.5 * dp["state_bytes_per_device"]
    assert os.path.exists(os.path.join(dirs[4], "samples.png"))
