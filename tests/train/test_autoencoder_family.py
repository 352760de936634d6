"""The autoencoder family: configs and refused ones, the KL term against its closed form,
the discriminator switched on only after its warm-up, and round trips of real digits
(the bundled 8x8 scikit-learn digits) after a short run."""

import functools
import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen
from jaxgen import data
from jaxgen.errors import ConfigError
from jaxgen.train import loop, validation


def get_config(arg=None):
    return importlib.import_module("configs.autoencoder_mnist").get_config(arg)


def digits_config(channels=(8,), latent_channels=2, disc_weight=0.0, **train):
    """A tiny autoencoder on the 8x8 digits (no files needed)."""
    c = get_config("smoke")
    c.data.name, c.data.split, c.data.eval_split, c.data.data_dir = "digits", "train", "test", None
    c.autoencoder.channels = channels
    c.autoencoder.downsample_factor = 2 ** (len(channels) - 1)
    c.autoencoder.latent_channels = latent_channels
    c.autoencoder.disc_weight = disc_weight
    c.autoencoder.disc_channels = (8,)
    for k, v in train.items():
        c.train[k] = v
    return c


def _set(config, field, value):
    section, name = field.split(".")
    with config.unlocked():
        config[section][name] = value


def test_configs_validate_and_the_mnist_latent_is_7x7():
    for arg in (None, "smoke"):
        validation.validate(get_config(arg))
    c = get_config()
    assert c.family == "autoencoder" and c.autoencoder.kl_weight == 1e-6
    family = loop.make_family(c, (28, 28, 1))
    assert family.latent_shape == (7, 7, c.autoencoder.latent_channels)


@pytest.mark.parametrize("changes, field, message", [
    ({"autoencoder.downsample_factor": 8}, "autoencoder.downsample_factor",
     "must be 2^(levels - 1) = 2"),
    ({"autoencoder.channels": (8, 12)}, "autoencoder.num_groups", "must divide every entry"),
    ({"autoencoder.reconstruction": "lpips"}, "autoencoder.reconstruction", "'l1', 'l2'"),
    ({"autoencoder.kl_weight": -1.0}, "autoencoder.kl_weight", "[0.0, 1000000.0]"),
    ({"autoencoder.disc_channels": ()}, "autoencoder.disc_channels", "non-empty"),
    ({"train.compute_dtype": "bfloat16"}, "train.compute_dtype", "family 'autoencoder'"),
])
def test_bad_autoencoder_configs_are_refused_with_one_line(changes, field, message):
    config = get_config("smoke")
    for k, v in changes.items():
        _set(config, k, v)
    with pytest.raises(ConfigError) as e:
        validation.validate(config)
    assert e.value.field == field and "\n" not in str(e.value)
    assert message in str(e.value), str(e.value)


@pytest.mark.parametrize("shape, message", [
    ((30, 30, 1), "must divide the image size 30x30"), ((2,), "needs images")])
def test_data_the_autoencoder_cannot_take(shape, message):
    config = get_config()
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validation.check_data_fits(config, shape)


def _with_encoder_output(params, mean, logvar):
    """Parameters whose encoder outputs exactly (mean, logvar) at every latent position:
    a zero kernel and a constant bias in its last convolution."""
    out = jax.tree.map(jnp.asarray, params)
    conv = out["encoder"]["conv_out"]
    c = conv["bias"].shape[0] // 2
    conv["kernel"] = jnp.zeros_like(conv["kernel"])
    conv["bias"] = jnp.concatenate([jnp.full((c,), mean), jnp.full((c,), logvar)])
    return out


def test_kl_is_zero_at_the_prior_and_matches_the_closed_form():
    family = loop.make_family(digits_config(channels=(8, 8), latent_channels=3), (8, 8, 1))
    # any parameters of the right shapes: only the encoder's last layer, set below, matters
    shapes = jax.eval_shape(family.init, jax.random.key(0)).params["autoencoder"]
    params = jax.tree.map(lambda s: np.full(s.shape, 0.01, s.dtype), shapes)
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 1)), jnp.float32)
    terms = jax.jit(family.terms)
    _, kl, _ = terms(_with_encoder_output(params, 0.0, 0.0), x, jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(kl), 0.0)     # q(z|x) = N(0, I) = p(z)
    m, lv = 0.5, -1.0
    _, kl, _ = terms(_with_encoder_output(params, m, lv), x, jax.random.key(1))
    per_value = 0.5 * (m * m + math.exp(lv) - 1.0 - lv)      # KL(N(m, e^lv) || N(0, 1))
    np.testing.assert_allclose(np.asarray(kl), 4 * 4 * 3 * per_value, rtol=1e-5)


# One tiny adversarial autoencoder (a one-level 8x8x2 latent, discriminator switched on at
# step DISC_WARMUP) and its jitted step serve the warm-up test and the short round trip, so
# the step compiles once.
DISC_WARMUP = 10_000


@functools.lru_cache(maxsize=1)
def adversarial_family():
    config = digits_config(latent_channels=2, disc_weight=0.5, batch_size=32)
    config.autoencoder.disc_warmup = DISC_WARMUP
    config.optim.learning_rate, config.optim.schedule = 3e-3, "constant"
    config.optim.warmup_steps = 0      # (a learning-rate warm-up would make step 1 a no-op)
    family = loop.make_family(config, (8, 8, 1))
    return family, jax.jit(family.train_step), loop.open_data(config)


def test_the_discriminator_is_switched_on_only_after_the_warm_up():
    family, step, pipeline = adversarial_family()
    state = jax.jit(family.init)(jax.random.key(0))
    batch = pipeline.batch(0)
    d_before = state.params["discriminator"]

    at = lambda n: state.replace(step=jnp.asarray(n, jnp.int32))  # noqa: E731
    off, m_off = step(at(DISC_WARMUP - 1), batch, jax.random.key(1))
    assert float(m_off["d_loss"]) == float(m_off["g_loss"]) == float(m_off["adaptive_weight"]) == 0
    jax.tree.map(np.testing.assert_array_equal, off.params["discriminator"], d_before)
    jax.tree.map(np.testing.assert_array_equal, off.opt_state["discriminator"],
                 state.opt_state["discriminator"])
    assert float(m_off["loss"]) == pytest.approx(float(m_off["reconstruction"])
                                                 + 1e-6 * float(m_off["kl"]), rel=1e-5)

    on, m_on = step(at(DISC_WARMUP), batch, jax.random.key(1))
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                           on.params["discriminator"], d_before)
    assert all(jax.tree.leaves(changed))
    assert float(m_on["d_loss"]) > 0 and float(m_on["adaptive_weight"]) > 0
    # the autoencoder's objective now includes the weighted generator loss
    assert float(m_on["loss"]) == pytest.approx(
        float(m_on["reconstruction"]) + 1e-6 * float(m_on["kl"])
        + float(m_on["adaptive_weight"]) * float(m_on["g_loss"]), rel=1e-5)
    # same batch, same noise: the reconstruction terms of the two steps agree
    assert float(m_on["reconstruction"]) == pytest.approx(float(m_off["reconstruction"]))
    # and the autoencoder's update differs by the generator's gradient
    assert not np.allclose(on.params["autoencoder"]["decoder"]["conv_out"]["kernel"],
                           off.params["autoencoder"]["decoder"]["conv_out"]["kernel"])


def _digits_test_images():
    return data.Pipeline(data.make_source("digits", "test"), 176, 0).batch(0)["x"]


def test_round_trip_of_real_digits_after_a_short_run():
    """200 steps (batch 32) of a one-level autoencoder with a 8x8x2 latent: the held-out
    digits come back with PSNR > 18 dB ([0, 1] scale; MSE < 0.016), under a tenth of the
    pixel variance. The untrained autoencoder is far from that."""
    family, step, pipeline = adversarial_family()
    state = jax.jit(family.init)(jax.random.key(0))
    images = _digits_test_images()
    evaluate = jax.jit(family.evaluate)
    before = evaluate(state.ema_params, {"x": images}, jax.random.key(2))
    for i in range(200):
        state, _ = step(state, pipeline.batch(i), jax.random.fold_in(jax.random.key(0), i))
    params = state.params["autoencoder"]
    after = evaluate(params, {"x": images}, jax.random.key(2))
    variance = float(np.var(images)) / 4                       # on the [0, 1] scale
    assert float(after["psnr"]) > 18.0 and float(after["mse_01"]) < 0.1 * variance, after
    assert float(before["psnr"]) < 12.0, before
    # PSNR is the mean over images of 10 log10(1 / MSE) on the [0, 1] scale
    recon = np.asarray(jax.jit(family.reconstruct)(params, images))
    mse = np.mean(((recon - images) / 2) ** 2, axis=(1, 2, 3))
    assert float(after["psnr"]) == pytest.approx(float(np.mean(10 * np.log10(1 / mse))),
                                                 rel=1e-4)


@pytest.mark.slow  # ~1 minute: the loop, a 4x4x4 latent, 1500 steps, reload and evaluation
def test_round_trip_through_the_loop_after_a_longer_run(tmp_path):
    """Through the loop with f = 2 (8x8 -> 4x4x4) and 1500 steps: PSNR > 22 dB on the
    held-out digits, from the EMA parameters restored with jaxgen.load."""
    config = digits_config(channels=(16, 16), latent_channels=4, batch_size=32,
                           num_steps=1500, checkpoint_every=1500, eval_batches=1)
    config.optim.learning_rate, config.optim.warmup_steps = 2e-3, 50
    config.sampler.num_samples = 16
    workdir = str(tmp_path / "ae")
    loop.train(config, workdir, quiet=True)
    run = jaxgen.load(workdir)
    pipeline = data.Pipeline(data.make_source("digits", "test"), 176, 0)
    metrics = run.evaluate(pipeline, 1)
    assert metrics["psnr"] > 22.0, metrics
    samples = run.sample(jax.random.key(0), 16)   # reconstructions of the first test digits
    truth = data.preprocess(pipeline.source.get_batch(np.arange(16))[0])
    assert samples.shape == (16, 8, 8, 1)
    assert np.mean((samples - truth) ** 2) < 0.05
