"""jaxgen.core.xla_options: the CPU compile options, where they apply and what they keep."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxgen.core import xla_options
from jaxgen.train import get_family, loop, sharding
from jaxgen.train import state as state_lib

FIELD = "xla_cpu_experimental_ynn_fusion_type"


def test_cpu_gives_convolutions_back_to_xla_and_keeps_ynnpack_dots_and_reductions(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    kinds = xla_options.options("cpu")[FIELD].split(",")
    assert "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION" not in kinds
    assert set(kinds) == {"LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT", "LIBRARY_FUSION_TYPE_REDUCE"}
    assert xla_options.options("gpu") is None
    assert xla_options.options("tpu", xla_foo=1) == {"xla_foo": 1}
    # extra options merge with the CPU ones
    assert xla_options.options("cpu", xla_backend_optimization_level=0) == {
        FIELD: ",".join(kinds), "xla_backend_optimization_level": 0}


def test_a_user_setting_in_xla_flags_stands(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", f"--{FIELD}=")
    assert xla_options.options("cpu") is None


def test_an_option_this_jaxlib_rejects_is_dropped_with_a_warning(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setattr(xla_options, "_CPU", {FIELD: "LIBRARY_FUSION_TYPE_NO_SUCH_KIND"})
    with pytest.warns(RuntimeWarning, match="rejected the CPU compile options"):
        assert xla_options.options("cpu") is None


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compile options")
def test_convolutions_and_their_gradients_agree_with_the_default_compile(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (4, 16, 16, 8))
    w = jax.random.normal(kw, (3, 3, 8, 16)) * 0.1

    def f(x, w):
        y = lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(jnp.tanh(y) ** 2)

    g = jax.value_and_grad(f, argnums=(0, 1))
    ours = xla_options.jit(g)(x, w)
    default = jax.jit(g)(x, w)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(default)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compile options")
def test_the_training_loop_compiles_its_step_and_sampler_with_the_options(monkeypatch):
    """A deliberately invalid option, once past the acceptance check, must reach XLA through
    the loop's jitted step, initialisation and sampler."""
    from configs import gan_toy
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    bad = {FIELD: "LIBRARY_FUSION_TYPE_NO_SUCH_KIND"}
    monkeypatch.setattr(xla_options, "_accepted", lambda key: True)
    monkeypatch.setattr(xla_options, "_CPU", bad)
    config = gan_toy.get_config("smoke")
    family = get_family(config.family)(config, (2,))
    mesh = sharding.make_mesh()
    with pytest.raises(Exception, match="NO_SUCH_KIND"):
        loop.init_or_restore(family, mesh, None, seed=0)
    monkeypatch.setattr(xla_options, "_CPU", {})
    state, _ = loop.init_or_restore(family, mesh, None, seed=0)
    monkeypatch.setattr(xla_options, "_CPU", bad)
    with pytest.raises(Exception, match="NO_SUCH_KIND"):
        loop.sampler(family)(state.ema_params, jax.random.key(0), 4)
    step = loop.guarded_step(family, sharding.state_shardings(state, mesh), mesh)
    batch = {"x": jnp.zeros((config.train.batch_size, 2))}
    with pytest.raises(Exception, match="NO_SUCH_KIND"):
        step.lower(state, state_lib.init_guard(0), batch, jax.random.key(0)).compile()
