import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from jaxgen.train import optim
from jaxgen.train.state import TrainState


def optim_cfg(**kw):
    c = base.get_config().optim
    c.update(kw)
    return c


def test_warmup_then_cosine_schedule():
    lr = optim.learning_rate_schedule(optim_cfg(learning_rate=1e-3, warmup_steps=10,
                                                schedule="cosine", final_lr_fraction=0.1), 110)
    np.testing.assert_allclose(lr(0), 0.0)
    np.testing.assert_allclose(lr(5), 5e-4, rtol=1e-6)
    np.testing.assert_allclose(lr(10), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(lr(60), 0.5 * (1e-3 + 1e-4), rtol=1e-5)  # half-way down
    np.testing.assert_allclose(lr(110), 1e-4, rtol=1e-5)
    const = optim.learning_rate_schedule(optim_cfg(warmup_steps=0, schedule="constant"), 100)
    assert float(const(0)) == float(const(99)) == optim_cfg().learning_rate


def test_clipping_and_ema_update():
    tx = optim.build_optimizer(optim_cfg(learning_rate=0.1, warmup_steps=0, grad_clip=1.0,
                                         name="adam"), 10)
    params = {"w": jnp.ones(3)}
    state = TrainState.create(params, tx)
    huge = {"w": jnp.array([1e6, 0.0, 0.0])}
    new = state.apply_gradients(huge, tx, ema_decay=0.9)
    assert int(new.step) == 1
    # Adam's first step moves each coordinate by ~lr in the sign of its gradient
    np.testing.assert_allclose(new.params["w"], [0.9, 1.0, 1.0], atol=1e-5)
    # EMA warm-up: the first update uses d = min(0.9, 1/10) = 0.1
    np.testing.assert_allclose(new.ema_params["w"], 0.1 * 1.0 + 0.9 * new.params["w"], rtol=1e-6)
    # ... and from n = 80 on ((1 + n) / (10 + n) >= 0.9) the configured decay
    late = state.replace(step=jnp.asarray(100, jnp.int32))
    new = late.apply_gradients(huge, tx, ema_decay=0.9)
    np.testing.assert_allclose(new.ema_params["w"], 0.9 * 1.0 + 0.1 * new.params["w"], rtol=1e-6)
    with pytest.raises(ValueError, match="optim.name"):
        optim.build_optimizer(optim_cfg(name="sgd"), 10)


def test_rmsprop_first_step_is_the_closed_form():
    # nu_1 = (1 - decay) g^2, so the first update is -lr g / sqrt(nu_1 + eps)
    # = -lr sign(g) / sqrt(1 - decay): sqrt(10) lr for decay 0.9 (Adam would move lr).
    tx = optim.build_optimizer(optim_cfg(name="rmsprop", learning_rate=0.01, b2=0.9,
                                         warmup_steps=0, grad_clip=0.0), 10)
    params = {"w": jnp.zeros(3)}
    updates, _ = tx.update({"w": jnp.array([2.0, -0.5, 0.0])}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.01 * 10 ** 0.5, 0.01 * 10 ** 0.5, 0.0],
                               rtol=1e-5)
