"""The generalised diffusion family: every shipped config validates, bad combinations
are refused before compiling, representative smoke configs train end to end, and the
tiny toy configs learn their data in seconds."""

import glob
import importlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

import jaxgen
from jaxgen.data import toy
from jaxgen.errors import ConfigError
from jaxgen.metrics import energy_distance
from jaxgen.train import loop, validation

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                 if os.path.basename(p) not in ("__init__.py", "base.py"))


def get_config(name, arg=None):
    return importlib.import_module(f"configs.{name}").get_config(arg)


def read_losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return np.array([json.loads(line)["loss"] for line in f])


def perturb(params, scale=0.1, seed=0):
    """Random values added to every leaf: an initialised net predicts exactly zero (its
    last layer is zero), which would hide any dependence on time or labels. (numpy: a
    jitted jax.random over many leaves takes seconds to compile.)"""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: p + scale * rng.standard_normal(p.shape, np.float32), params)


# -- configs -----------------------------------------------------------------------------


def test_the_config_list_is_complete():
    expected = {"ddpm_digits", "ddpm_mnist", "ddpm_mnist_x0", "ddpm_mnist_v", "rf_mnist",
                "rf_mnist_cfg", "sde_ve_mnist", "sde_vp_mnist", "edm_mnist", "rf_toy",
                "ddpm_toy"}
    assert expected <= set(CONFIGS), expected - set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_and_its_smoke_variant_validate(name):
    full, smoke = get_config(name), get_config(name, "smoke")
    validation.validate(full)
    validation.validate(smoke)
    assert smoke.train.num_steps <= 10 and smoke.sampler.num_samples <= 16
    assert get_config(name).to_dict() == full.to_dict()  # no shared mutable state
    with pytest.raises(ValueError, match="smoke"):
        get_config(name, "huge")
    doc = importlib.import_module(f"configs.{name}").__doc__
    assert f"--config=configs/{name}.py" in doc  # the launch command
    if full.data.name == "mnist":
        # the real data are found through the documented flag, never a hard-coded path
        assert full.data.data_dir is None and "--config.data.data_dir=" in doc
        assert (full.data.split, full.data.eval_split) == ("test[:90%]", "test[90%:]")


def test_digits_config_keeps_its_behaviour():
    """The demo's fields are the ones it always had: DDPM, eps, ancestral over all steps."""
    c = get_config("ddpm_digits")
    family = loop.make_family(c, (8, 8, 1))
    assert family.process.discrete and family.process.num_timesteps == 1000
    assert family.sampler_kwargs() == {"method": "ddpm", "prediction": "eps", "clip_x0": 1.0,
                                       "num_steps": None, "spacing": None, "variance": "beta"}
    assert family.num_classes == 0 and family.sample_labels(4) is None
    t = jnp.array([0, 999])
    assert family.time_features(t) is t  # integer steps go to the UNet unchanged


# -- validation --------------------------------------------------------------------------

# (config, {field: value}, field named by the error, substring of the message)
BAD = [
    ("ddpm_digits", {"diffusion.process": "flow"}, "diffusion.process", "'rectified_flow'"),
    ("ddpm_digits", {"diffusion.prediction": "velocity"}, "diffusion.prediction",
     "continuous-time"),
    ("ddpm_digits", {"diffusion.time_sampler": "log_normal"}, "diffusion.time_sampler",
     "continuous-time"),
    ("ddpm_digits", {"diffusion.time_sampler": "beta"}, "diffusion.time_sampler",
     "'logit_normal'"),
    ("ddpm_digits", {"diffusion.weighting": "p2"}, "diffusion.weighting", "'min_snr'"),
    ("ddpm_digits", {"diffusion.weighting": "min_snr", "diffusion.min_snr_gamma": 0.0},
     "diffusion.min_snr_gamma", "(0.0"),
    ("ddpm_digits", {"diffusion.time_std": 0.0}, "diffusion.time_std", "(0.0"),
    ("ddpm_digits", {"diffusion.time_shift": -1.0}, "diffusion.time_shift", "(0.0"),
    ("edm_mnist", {"diffusion.time_shift": 3.0}, "diffusion.time_shift", "log_normal"),
    ("ddpm_digits", {"diffusion.precondition": "karras"}, "diffusion.precondition", "'edm'"),
    ("edm_mnist", {"diffusion.prediction": "eps"}, "diffusion.prediction", "must be 'x0'"),
    ("rf_mnist", {"diffusion.precondition": "edm", "diffusion.prediction": "x0"},
     "diffusion.precondition", "alpha"),
    ("sde_vp_mnist", {"diffusion.beta_max": 0.05}, "diffusion.beta_max",
     "greater than diffusion.beta_min (0.1)"),
    ("sde_ve_mnist", {"diffusion.sigma_max": 0.001}, "diffusion.sigma_max",
     "greater than diffusion.sigma_min"),
    ("edm_mnist", {"diffusion.sigma_min": -1.0}, "diffusion.sigma_min", "None"),
    ("edm_mnist", {"diffusion.sigma_data": 0.0}, "diffusion.sigma_data", "(0.0"),
    ("ddpm_digits", {"diffusion.label_dropout": 0.1}, "diffusion.label_dropout",
     "model.num_classes > 0"),
    ("rf_mnist_cfg", {"diffusion.label_dropout": 1.0}, "diffusion.label_dropout", "1.0)"),
    ("ddpm_digits", {"sampler.guidance_weight": 2.0}, "sampler.guidance_weight",
     "label_dropout > 0"),
    ("rf_mnist_cfg", {"sampler.guidance_weight": -2.0}, "sampler.guidance_weight", "[-1.0"),
    ("ddpm_digits", {"sampler.method": "rk4"}, "sampler.method", "'dpm_solver++'"),
    ("rf_mnist", {"sampler.method": "pc"}, "sampler.method", "alpha(t_max) > 0"),
    ("rf_mnist", {"sampler.method": "euler_maruyama"}, "sampler.method", "'heun'"),
    ("ddpm_digits", {"sampler.spacing": "quadratic"}, "sampler.spacing", "'trailing'"),
    ("rf_mnist", {"sampler.spacing": "leading"}, "sampler.spacing", "'karras'"),
    ("ddpm_digits", {"sampler.spacing": "karras", "sampler.num_steps": 15},
     "sampler.spacing", "distinct steps"),
    ("ddpm_digits", {"sampler.num_steps": 21}, "sampler.num_steps", "[0, 20]"),
    ("rf_mnist", {"sampler.num_steps": 0}, "sampler.num_steps", "continuous-time"),
    ("ddpm_digits", {"sampler.num_steps": -1}, "sampler.num_steps", ">= 0"),
    ("ddpm_digits", {"sampler.eta": 0.5}, "sampler.eta", "'ddim'"),
    ("ddpm_digits", {"sampler.method": "ddim", "sampler.eta": 1.5}, "sampler.eta", "[0.0"),
    ("sde_ve_mnist", {"sampler.snr": 0.0}, "sampler.snr", "(0.0"),
    ("sde_ve_mnist", {"sampler.corrector_steps": -1}, "sampler.corrector_steps", ">= 0"),
    ("ddpm_digits", {"model.num_classes": -1}, "model.num_classes", ">= 0"),
    ("rf_toy", {"model.hidden_dim": 63}, "model.hidden_dim", "even"),
    ("rf_toy", {"model.num_layers": 0}, "model.num_layers", ">= 1"),
    ("ddpm_digits", {"model.name": "transformer"}, "model.name", "'mlp'"),
]


def _set(config, field, value):
    section, name = field.split(".")
    with config.unlocked():
        config[section][name] = value


@pytest.mark.parametrize("name, changes, field, message", BAD,
                         ids=[f"{n}:{','.join(f'{k}={v}' for k, v in c.items())}"
                              for n, c, _, _ in BAD])
def test_bad_combinations_are_refused_with_one_line(name, changes, field, message):
    config = get_config(name, "smoke")
    for k, v in changes.items():
        _set(config, k, v)
    with pytest.raises(ConfigError) as e:
        validation.validate(config)
    assert e.value.field == field, str(e.value)
    assert "\n" not in str(e.value)
    assert str(e.value).startswith(f"{field}=")
    assert message in str(e.value), str(e.value)


@pytest.mark.parametrize("name, shape, classes, field, message", [
    ("rf_toy", (8, 8, 1), 10, "model.name", "needs points (D,)"),
    ("ddpm_digits", (2,), 0, "data.name", "needs images"),
    ("rf_mnist_cfg", (2,), 0, "model.num_classes", "has no labels"),
    ("rf_mnist_cfg", (28, 28, 1), 5, "model.num_classes", "must be 0 or 5"),
])
def test_data_that_does_not_fit_the_model(name, shape, classes, field, message):
    config = get_config(name, "smoke")
    with pytest.raises(ConfigError) as e:
        validation.check_data_fits(config, shape, classes)
    assert e.value.field == field and message in str(e.value), str(e.value)


# -- the family's pieces (no training) ---------------------------------------------------


def toy_family(name, **changes):
    """The family of config ``name`` (smoke) with a small MLP on 2-D points: the logic
    under test does not depend on the backbone, and the MLP runs eagerly in no time."""
    config = get_config(name, "smoke")
    config.model.name = "mlp"
    config.model.hidden_dim = 16
    for k, v in changes.items():
        _set(config, k, v)
    return config, loop.make_family(config, (2,))


@pytest.mark.parametrize("name, t, expected", [
    ("rf_toy", [0.0, 0.25, 1.0], [0.0, 250.0, 1000.0]),
    ("sde_vp_mnist", [1e-5, 0.5], [1e-2, 500.0]),
    ("edm_mnist", [np.exp(-2.0), 1.0, np.exp(4.0)], [-500.0, 0.0, 1000.0]),
])
def test_continuous_time_reaches_the_network_scaled(name, t, expected):
    _, family = toy_family(name)
    np.testing.assert_allclose(family.time_features(jnp.array(t, jnp.float32)), expected,
                               rtol=1e-5, atol=1e-5)


def init_params(family, perturbed=False):
    params = jax.jit(family.init)(jax.random.key(0)).params
    return perturb(params) if perturbed else params


def test_edm_preconditioned_model_starts_as_c_skip_times_x():
    """The zero-initialised network F gives D(x; sigma) = c_skip(sigma) x (Karras et al.
    2022, Eq. 7), and the network sees 1000 c_noise = 250 log sigma."""
    _, family = toy_family("edm_mnist")
    params = init_params(family)
    x = jax.random.normal(jax.random.key(1), (3, 2))
    sigma = jnp.array([0.01, 0.5, 40.0])
    out = jax.jit(lambda p: family.model_fn(p)(x, sigma))(params)
    c_skip = 0.25 / (sigma ** 2 + 0.25)
    np.testing.assert_allclose(out, c_skip[:, None] * x, rtol=1e-5, atol=1e-6)

    seen = []
    family.model = type("Spy", (), {"apply": lambda self, v, x, f, *a, **k: (
        seen.append(f), jnp.zeros_like(x))[1]})()
    family.model_fn(params)(x, sigma)
    np.testing.assert_allclose(seen[0], 250.0 * np.log(sigma), rtol=1e-5)


def test_classifier_free_guidance_at_sampling():
    config, family = toy_family("rf_mnist_cfg")
    _, plain = toy_family("rf_mnist_cfg", **{"diffusion.label_dropout": 0.0,
                                             "sampler.guidance_weight": 0.0})
    params = init_params(family, perturbed=True)
    labels = family.sample_labels(23)
    np.testing.assert_array_equal(labels, np.arange(23) % 10)  # one class per grid column
    x = jax.random.normal(jax.random.key(1), (23, 2))
    t = jnp.full((23,), 0.6)

    @jax.jit
    def outputs(params):
        return (family.model_fn(params, labels)(x, t),
                family.model_fn(params, jnp.full((23,), 10))(x, t),
                family.model_fn(params)(x, t),
                family.guided_model_fn(params, labels)(x, t),
                plain.guided_model_fn(params, labels)(x, t))

    cond, uncond, no_labels, guided, unguided = outputs(params)
    assert float(jnp.max(jnp.abs(cond - uncond))) > 1e-3  # the label matters
    np.testing.assert_allclose(no_labels, uncond, rtol=1e-5, atol=1e-6)  # None = null label
    w = config.sampler.guidance_weight
    assert w > 0
    np.testing.assert_allclose(guided, (1 + w) * cond - w * uncond, rtol=1e-4, atol=1e-5)
    # without label dropout the model is plainly conditional
    np.testing.assert_allclose(unguided, cond, rtol=1e-5, atol=1e-6)


def test_label_dropout_hides_labels_from_training():
    """With dropout p the loss sees the null label for a fraction p of the batch: at p
    close to 1 the loss no longer depends on the labels, at p = 0 it does."""
    x = jax.random.normal(jax.random.key(2), (16, 2))
    a = jnp.arange(16) % 10
    b = (jnp.arange(16) + 3) % 10
    rng = jax.random.key(3)

    def losses(p):
        _, family = toy_family("rf_mnist_cfg", **{"diffusion.label_dropout": p})
        params = init_params(family, perturbed=True)
        loss = jax.jit(jax.vmap(lambda labels: family.loss(params, {"x": x, "label": labels},
                                                           rng)))
        return [float(v) for v in loss(jnp.stack([a, b]))]

    la, lb = losses(0.0)
    assert abs(la - lb) > 1e-4 * la
    la, lb = losses(1.0 - 1e-7)
    assert la == pytest.approx(lb, rel=1e-6)


# -- end to end --------------------------------------------------------------------------


@pytest.mark.slow  # conditioning and guidance are covered by the fast unit tests above
def test_class_conditional_smoke_config_trains_on_mock_mnist(tmp_path):
    """Labels from a TFDS source, label dropout, guided Euler sampling: train, checkpoint,
    write the sample grid, reload and sample."""
    config = get_config("rf_mnist_cfg", "smoke")
    config.data.split = config.data.eval_split = "train"
    workdir = str(tmp_path / "cfg")
    with tfds.testing.mock_data(num_examples=32):
        state = loop.train(config, workdir, quiet=True)
    assert int(state.step) == config.train.num_steps
    assert np.all(np.isfinite(read_losses(workdir)))
    assert os.path.getsize(os.path.join(workdir, "samples.png")) > 0
    x = jaxgen.load(workdir).sample(jax.random.key(0), config.sampler.num_samples)
    assert x.shape == (config.sampler.num_samples, 28, 28, 1) and np.all(np.isfinite(x))


@pytest.mark.parametrize("name", ["edm_mnist", "sde_ve_mnist", "sde_vp_mnist"])
def test_smoke_configs_train_end_to_end_with_the_mlp(name, tmp_path):
    """EDM (preconditioning, log-normal times, Heun), VE (predictor-corrector) and VP
    (Euler-Maruyama) through the loop, on toy points with the MLP: the UNet adds only
    compile time here."""
    config, _ = toy_family(name, **{"data.name": "toy:moons"})
    workdir = str(tmp_path / name)
    loop.train(config, workdir, quiet=True)
    assert np.all(np.isfinite(read_losses(workdir)))
    x = jaxgen.load(workdir).sample(jax.random.key(0), config.sampler.num_samples)
    assert x.shape == (config.sampler.num_samples, 2) and np.all(np.isfinite(x))
    from PIL import Image
    assert np.asarray(Image.open(os.path.join(workdir, "samples.png"))).shape == (256, 256)


# (config, steps, loss ratio bound): the loss must fall from its first 50 steps to its last
# 50. Rectified flow's velocity loss keeps a large irreducible part (x_0 and z are not
# determined by x_t; measured: 1.87 -> 1.42), so its bound is looser than DDPM's
# (measured: 0.69 -> 0.24). A model that does not learn stays near 1.
LEARNERS = [("rf_toy", 600, 0.85), ("ddpm_toy", 400, 0.7)]


@pytest.mark.parametrize("name, steps, ratio", LEARNERS)
def test_tiny_toy_configs_learn_in_seconds(name, steps, ratio, tmp_path):
    config = get_config(name)
    config.train.num_steps = steps
    config.train.log_every = 1
    config.train.checkpoint_every = steps
    # The energy distance of 1000 points swings by ~2x between sampling keys; 2000 halve it.
    config.sampler.num_samples = 2000
    if name == "ddpm_toy":
        config.sampler.num_steps = 100  # ancestral jumps over 10 steps each: 10x cheaper
    workdir = str(tmp_path / name)
    loop.train(config, workdir, quiet=True)

    losses = read_losses(workdir)
    assert len(losses) == steps
    assert losses[-50:].mean() < ratio * losses[:50].mean(), (losses[:50].mean(),
                                                               losses[-50:].mean())

    run = jaxgen.load(workdir)
    n = config.sampler.num_samples
    samples = run.sample(jax.random.key(1), n)
    dist = config.data.name.split(":")[1]
    data = toy.sample(dist, 12345, n)  # fresh data: not the training seed
    # Deliberately bad samples to calibrate against: the untrained model, and a Gaussian
    # with the data's mean and covariance (right first two moments, no modes).
    untrained = np.asarray(run._sample_fn(jax.jit(run.family.init)(jax.random.key(0)).ema_params,
                                          jax.random.key(1), n))
    gaussian = np.random.default_rng(0).multivariate_normal(data.mean(0), np.cov(data.T), n)
    ed = float(energy_distance(samples, data))
    ed_gaussian = float(energy_distance(gaussian, data))
    ed_untrained = float(energy_distance(untrained, data))
    ed_floor = float(energy_distance(toy.sample(dist, 54321, n), data))
    # Measured (2000 points): trained 0.002-0.005 (rf, six keys) and 0.002 (ddpm); the
    # Gaussian 0.042; data against data within +-0.001.
    bound = 0.25 * ed_gaussian
    assert ed_floor < bound < ed_untrained  # the bound separates data from bad samples
    assert ed < bound, dict(trained=ed, gaussian=ed_gaussian, untrained=ed_untrained,
                            data=ed_floor)
