"""The feature classifier: shapes, per-image features, errors, and that it learns."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen.data.pipeline import preprocess
from jaxgen.data.sources import digits_source
from jaxgen.nets.classifier import Classifier
from tests.metrics.helpers import random_params


@pytest.mark.parametrize("shape", [(28, 28, 1), (8, 8, 1)])
def test_shapes_and_features_do_not_depend_on_the_rest_of_the_batch(shape):
    model = Classifier(num_classes=10, channels=(16, 32), feature_dim=24)
    x = np.random.default_rng(0).uniform(-1, 1, (5,) + shape).astype(np.float32)
    params = random_params(model, shape)  # no init compile: the learning test runs init
    apply = jax.jit(model.apply)
    logits, feats = apply({"params": params}, x)
    assert logits.shape == (5, 10) and feats.shape == (5, 24) and feats.dtype == jnp.float32
    # two stages, the second with stride 2: 28 -> 14 and 8 -> 4 before the feature layer
    assert params["features"]["kernel"].shape == (32 * (shape[0] // 2) ** 2, 24)
    _, alone = apply({"params": params}, x[2:3])
    np.testing.assert_allclose(alone[0], feats[2], rtol=1e-5, atol=1e-6)
    # distinct images get distinct features
    assert float(jnp.abs(feats[0] - feats[1]).max()) > 1e-3


def test_non_image_input_raises():
    with pytest.raises(ValueError, match="NHWC"):
        jax.eval_shape(Classifier().init, jax.random.key(0), jnp.zeros((4, 8, 8)))


def test_learns_digits_in_a_few_steps():
    train, test = digits_source("train"), digits_source("test")
    x, y = preprocess(train.images), train.labels
    xt, yt = preprocess(test.images), test.labels
    model = Classifier(channels=(16, 32), feature_dim=32)
    params = jax.jit(model.init)(jax.random.key(0), x[:1])["params"]
    tx = optax.adam(3e-3)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, xb, yb):
        def loss(p):
            return optax.softmax_cross_entropy_with_integer_labels(
                model.apply({"params": p}, xb)[0], yb).mean()
        val, g = jax.value_and_grad(loss)(params)
        upd, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, upd), opt, val

    rng = np.random.default_rng(0)
    losses = []
    for _ in range(60):
        idx = rng.choice(len(x), 64, replace=False)
        params, opt, val = step(params, opt, x[idx], y[idx])
        losses.append(float(val))
    acc = np.mean(np.argmax(jax.jit(model.apply)({"params": params}, xt)[0], -1) == yt)
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:5])
    assert acc > 0.85, acc  # chance is 0.1
