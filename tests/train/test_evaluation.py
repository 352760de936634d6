"""Sample-quality evaluation of a family: numbers that state their sample count and
reference, toy metrics that separate a good sampler from a bad one, and image metrics on
the features of a FeatureExtractor file."""

import importlib
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import metrics
from jaxgen.errors import ConfigError
from jaxgen.nets.classifier import Classifier
from jaxgen.train import evaluation, loop, validation


def get_config(name, arg=None):
    return importlib.import_module(f"configs.{name}").get_config(arg)


class ExactToyFamily:
    """Stands in for a trained family: 'samples' are draws from a pool of the data
    distribution itself, or from that pool squeezed towards the origin (a sampler that
    lost the modes). Jittable, like a family's ``sample``."""

    def __init__(self, name, scale):
        from jaxgen.data import make_source
        self.pool = jnp.asarray(scale) * make_source(name, "train", None).sample_at(123, np.arange(5000))

    def sample(self, params, rng, num):
        return self.pool[jax.random.choice(rng, len(self.pool), (num,), replace=False)]


def test_toy_quality_separates_the_data_from_a_collapsed_model(tmp_path):
    config = get_config("ddpm_toy", "smoke")
    config.eval.num_samples, config.eval.batch_size = 600, 200
    good = evaluation.sample_quality(config, ExactToyFamily(config.data.name, 1.0), None,
                                     jax.random.key(0), str(tmp_path))
    bad = evaluation.sample_quality(config, ExactToyFamily(config.data.name, 0.3), None,
                                    jax.random.key(0), str(tmp_path))
    assert good["num_samples"] == 600 and "seed" in good["reference"]
    assert good["modes_covered"] == good["num_modes"] == 8
    assert good["high_quality_fraction"] > 0.95 and bad["high_quality_fraction"] < 0.2
    assert abs(good["energy_distance"]) < 0.02 < bad["energy_distance"]
    assert good["sliced_wasserstein"] < bad["sliced_wasserstein"]
    logged = evaluation.numeric(good)
    assert logged["eval/num_samples"] == 600 and "eval/reference" not in logged


def test_generation_is_independent_of_the_call_size():
    config = get_config("ddpm_toy", "smoke")
    family = loop.make_family(config, (2,))
    params = jax.jit(family.init)(jax.random.key(0)).ema_params
    a = evaluation.generate(family, params, jax.random.key(1), 10, 10)
    b = evaluation.generate(family, params, jax.random.key(1), 10, 10)
    c = evaluation.generate(family, params, jax.random.key(1), 7, 10)
    assert a.shape == (10, 2) and c.shape == (7, 2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:7], c)       # the last call is cut, not redrawn


@pytest.fixture(scope="module")
def digits_extractor(tmp_path_factory):
    params = Classifier().init(jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32))["params"]
    ext = metrics.classifier_extractor(params, name="classifier-digits-test",
                                       input_shape=(8, 8, 1))
    return ext.save(str(tmp_path_factory.mktemp("feature_nets")))


class RealDigitsFamily:
    """'Samples' drawn from real digits (the train split), optionally noised."""

    def __init__(self, noise):
        self.images = jnp.asarray(metrics.load_split_images("digits", "train")[0])
        self.noise = noise

    def sample(self, params, rng, num):
        x = self.images[jax.random.choice(rng, len(self.images), (num,), replace=False)]
        return x + self.noise * jax.random.normal(rng, x.shape)


def test_image_quality_states_its_reference_and_grows_with_noise(tmp_path, digits_extractor):
    config = get_config("ddpm_digits", "smoke")
    config.eval.num_samples, config.eval.batch_size = 150, 50
    config.eval.feature_net = digits_extractor
    validation.validate(config)
    clean = evaluation.sample_quality(config, RealDigitsFamily(0.0), None, jax.random.key(0),
                                      str(tmp_path))
    noisy = evaluation.sample_quality(config, RealDigitsFamily(0.5), None, jax.random.key(0),
                                      str(tmp_path))
    assert clean["reference"] == "digits test" and clean["num_samples"] == 150
    assert clean["feature_net"].startswith("classifier-digits-test@")
    assert clean["fd_reference_count"] == 176 and clean["knn_reference_count"] == 150
    assert noisy["fd"] > 2 * clean["fd"] > 0
    assert noisy["kid"] > clean["kid"]
    assert all(0 <= clean[k] <= 1 for k in ("precision", "recall", "coverage"))
    assert clean["kid_subset_size"] == 75 and clean["kid_std"] > 0  # half the sets
    cached = sorted(os.listdir(tmp_path / evaluation.REFERENCE_DIR))
    assert len(cached) == 2 and all("digits-test-classifier-digits-test" in c for c in cached)
    assert sum(c.endswith("-n150-" + c.split("-n150-")[-1]) and c.endswith("-features.npz")
               for c in cached) == 1  # the KID/PR reference features of 150 images, reused


def test_image_quality_needs_a_feature_net(tmp_path):
    config = get_config("ddpm_digits", "smoke")
    out = evaluation.sample_quality(config, None, None, jax.random.key(0), str(tmp_path))
    assert out == {"sample_quality_skipped": "no eval.feature_net for image data"}
    config.eval.feature_net = str(tmp_path / "missing.msgpack")
    with pytest.raises(ConfigError, match="eval.feature_net="):
        validation.validate(config)
