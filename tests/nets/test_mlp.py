"""The time-conditioned MLP for toy data: shapes, conditioning on time and class, errors."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen import nets
from jaxgen.nets import MLP


def nonzero_output(params, seed=0):
    """Random output weights: the initialised MLP predicts exactly zero."""
    rng = np.random.default_rng(seed)
    params = dict(params)
    params["dense_out"] = {k: 0.3 * rng.standard_normal(v.shape).astype(np.float32)
                           for k, v in params["dense_out"].items()}
    return params


@pytest.fixture(scope="module")
def model_and_params():
    model = MLP(out_dim=2, hidden_dim=16, num_layers=2, num_classes=3)
    x = jnp.zeros((1, 2))
    params = jax.jit(model.init)(jax.random.key(0), x, jnp.zeros((1,)), jnp.zeros((1,), jnp.int32))
    return model, params["params"]


def test_shape_zero_init_and_dependence_on_x_t_and_label(model_and_params):
    model, params = model_and_params
    apply = jax.jit(lambda p, x, t, y: model.apply({"params": p}, x, t, y))
    x = jax.random.normal(jax.random.key(1), (5, 2))
    t = jnp.array([0.0, 1.5, 250.0, 999.0, 10.0])  # float times (continuous processes)
    y = jnp.array([0, 1, 2, 3, 0])                   # 3 = the null label
    out = apply(params, x, t, y)
    assert out.shape == (5, 2) and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, 0.0)  # zero-initialised output layer

    params = nonzero_output(params)
    base = apply(params, x, t, y)
    changes = {
        "x": apply(params, x + 0.5, t, y),
        "t": apply(params, x, t + 100.0, y),
        "label": apply(params, x, t, (y + 1) % 4),
    }
    for what, other in changes.items():
        assert float(jnp.max(jnp.abs(other - base))) > 1e-3, what
    # integer steps (discrete DDPM) are accepted as well
    ints = apply(params, x, t.astype(jnp.int32), y)
    np.testing.assert_allclose(ints[3], apply(params, x, jnp.round(t), y)[3], rtol=1e-5)


def test_no_label_means_the_null_label(model_and_params):
    model, params = model_and_params
    params = nonzero_output(params)
    x = jax.random.normal(jax.random.key(2), (4, 2))
    t = jnp.full((4,), 300.0)
    none = model.apply({"params": params}, x, t)
    null = model.apply({"params": params}, x, t, jnp.full((4,), 3))
    np.testing.assert_allclose(none, null, rtol=1e-6)


def test_build_registers_the_mlp():
    assert "mlp" in nets.MODELS
    cfg = ml_collections.ConfigDict(dict(name="mlp", hidden_dim=32, num_layers=4, dropout=0.0))
    model = nets.build(cfg, out_channels=3)
    assert isinstance(model, MLP)
    assert (model.out_dim, model.hidden_dim, model.num_layers, model.num_classes) == (3, 32, 4,
                                                                                      None)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 3)), jnp.zeros((1,)))
    assert shapes["params"]["dense_out"]["kernel"].shape == (32, 3)
    assert "class_embedding" not in shapes["params"]
    cond = nets.build(cfg, out_channels=3, num_classes=10)
    shapes = jax.eval_shape(cond.init, jax.random.key(0), jnp.zeros((1, 3)), jnp.zeros((1,)),
                            jnp.zeros((1,), jnp.int32))
    # one row per class plus the null label
    assert shapes["params"]["class_embedding"]["embedding"].shape == (11, 32)


def test_dropout_is_active_only_in_training():
    model = MLP(out_dim=2, hidden_dim=16, num_layers=2, dropout=0.5)
    x = jax.random.normal(jax.random.key(3), (8, 2))
    t = jnp.full((8,), 10.0)
    params = nonzero_output(jax.jit(model.init)(jax.random.key(0), x, t)["params"])
    apply = lambda train, seed: model.apply({"params": params}, x, t, train=train,
                                            rngs={"dropout": jax.random.key(seed)})
    np.testing.assert_array_equal(apply(False, 0), apply(False, 1))
    assert float(jnp.max(jnp.abs(apply(True, 0) - apply(True, 1)))) > 1e-4


def test_bad_inputs():
    model = MLP(out_dim=2, hidden_dim=8, num_layers=1)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)), jnp.zeros((1,)))
    with pytest.raises(ValueError, match="t must have shape"):
        model.init(jax.random.key(0), jnp.zeros((2, 2)), jnp.zeros((3,)))
