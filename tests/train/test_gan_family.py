"""The GAN family: state layout, n_critic, EMA warm-up, weight clipping, batch statistics,
learning on a toy density, and one run through the generic loop."""

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import cgan_mnist, dcgan_mnist, gan_toy, wgan_gp_mnist
from jaxgen.errors import ConfigError
from jaxgen.train import gan as gan_family
from jaxgen.train import loop, validation
from jaxgen.train.gan import GANFamily, weight_clipping


def _toy(loss="non_saturating", **gan):
    c = gan_toy.with_loss(gan_toy.get_config(), loss)
    c.gan.hidden_dim = 32
    for k, v in gan.items():
        c.gan[k] = v
    return c


def _batch(key, n=64, mean=(4.0, -3.0), std=0.1):
    return {"x": jnp.asarray(mean) + std * jax.random.normal(key, (n, 2))}


def test_weight_clipping_keeps_every_weight_in_the_box_after_each_step():
    c = 0.01
    tx = optax.chain(optax.adam(0.05), weight_clipping(c))
    # Start far outside the box, with magnitudes where p + (clip(p + u) - p) rounds past c.
    params = {"w": jax.random.uniform(jax.random.key(0), (4096,), minval=-3, maxval=3),
              "b": jnp.array([0.3, -0.7, 1e-3])}
    state = tx.init(params)
    update = jax.jit(tx.update)
    for i in range(20):
        grads = jax.tree.map(lambda p: jax.random.normal(jax.random.fold_in(
            jax.random.key(1), i), p.shape), params)
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        assert all(float(jnp.max(jnp.abs(p))) <= c for p in jax.tree.leaves(params)), i
    # Inside the box the transform leaves the optimizer's updates alone.
    p = {"w": jnp.array([0.001, -0.002])}
    u = {"w": jnp.array([1e-4, 1e-4])}
    np.testing.assert_allclose(weight_clipping(c).update(u, None, p)[0]["w"], u["w"], rtol=1e-5)


def test_wgan_family_clips_the_critic_takes_n_critic_steps_and_averages_the_generator():
    c = _toy("wgan", n_critic=3, d_optimizer="adam")  # Adam's state counts the updates
    c.optim.ema_decay = 0.999
    family = GANFamily(c, (2,))
    state = s0 = jax.jit(family.init)(jax.random.key(0))
    step = jax.jit(family.train_step)
    for i in range(3):
        state, m = step(state, _batch(jax.random.key(i)), jax.random.key(10 + i))
        for leaf in jax.tree.leaves(state.params["discriminator"]):
            assert float(jnp.max(jnp.abs(leaf))) <= c.gan.clip_value
        if i == 0:  # the generator's EMA, step 0: d = min(0.999, 1/10)
            expected = jax.tree.map(lambda e, p: 0.1 * e + 0.9 * p, s0.ema_params["params"],
                                    state.params["generator"])
            for a, b in zip(jax.tree.leaves(state.ema_params["params"]),
                            jax.tree.leaves(expected)):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
            moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                                 state.params["generator"], s0.params["generator"])
            assert max(jax.tree.leaves(moved)) > 0
    counts = [int(v) for _, v in optax.tree_utils.tree_get_all_with_path(
        state.opt_state["discriminator"], "count")]
    assert counts and all(n == 9 for n in counts)  # 3 loop steps x n_critic 3
    assert int(state.step) == 3
    assert {"d_loss", "g_loss", "loss", "d_grad_norm", "g_grad_norm", "grad_norm"} <= set(m)


def test_mlp_gan_learns_a_shifted_gaussian():
    """From G(z) near 0 to samples near the data's mean (4, -3) in 400 steps."""
    c = _toy()
    family = GANFamily(c, (2,))

    @jax.jit
    def train(state):
        def body(s, i):
            s, m = family.train_step(s, _batch(jax.random.fold_in(jax.random.key(1), i)),
                                     jax.random.fold_in(jax.random.key(2), i))
            return s, m["d_loss"]
        return jax.lax.scan(body, state, jnp.arange(400))

    s0 = jax.jit(family.init)(jax.random.key(0))
    before = np.asarray(family.sample(s0.ema_params, jax.random.key(3), 500))
    state, d_loss = train(s0)
    after = np.asarray(family.sample(state.ema_params, jax.random.key(3), 500))
    target = np.array([4.0, -3.0])
    assert np.linalg.norm(before.mean(0) - target) > 3.0
    assert np.linalg.norm(after.mean(0) - target) < 0.3
    assert np.all(np.isfinite(np.asarray(d_loss)))


@pytest.mark.slow  # ~15 s of XLA compilation for the DCGAN step and two sampler shapes
def test_conditional_dcgan_step_updates_batch_stats_and_samples_in_eval_mode():
    c = cgan_mnist.get_config("smoke")
    c.gan.g_channels = (8,)  # one upsampling: 4x4 -> 8x8 (compiles faster)
    c.gan.n_critic = 2
    c.gan.critic_data = "split"
    family = GANFamily(c, (8, 8, 1))
    state = jax.jit(family.init)(jax.random.key(0))
    assert set(state.params) == set(state.model_state) == {"generator", "discriminator"}
    batch = {"x": jnp.tanh(jax.random.normal(jax.random.key(1), (8, 8, 8, 1))),
             "label": jnp.arange(8, dtype=jnp.int32) % 10}
    new, m = jax.jit(family.train_step)(state, batch, jax.random.key(2))
    for name in ("generator", "discriminator"):
        diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                            new.model_state[name], state.model_state[name])
        assert min(jax.tree.leaves(diff)) > 0, name  # running averages moved
    assert np.isfinite(float(m["grad_norm"]))
    sample = jax.jit(family.sample, static_argnums=2)
    a = np.asarray(sample(new.ema_params, jax.random.key(3), 10))
    b = np.asarray(sample(new.ema_params, jax.random.key(3), 20))
    assert a.shape == (10, 8, 8, 1)
    np.testing.assert_allclose(a, b[:10], atol=1e-5)  # eval mode: no batch dependence
    labels = family.sample_labels(20)
    assert [int(v) for v in labels[:12]] == list(range(10)) + [0, 1]


def test_the_critic_updates_are_not_a_compiled_loop():
    """XLA:CPU runs convolution weight gradients several times slower inside a while
    loop's body than at the top level (the DCGAN step took 4x longer as a one-trip
    lax.scan), so on CPU the n_critic updates must be unrolled into the program."""
    if jax.default_backend() != "cpu":
        pytest.skip("the updates are unrolled on CPU only")
    c = wgan_gp_mnist.get_config("smoke")
    c.gan.n_critic = 2
    c.train.batch_size = 4
    family = GANFamily(c, (28, 28, 1))
    state = jax.eval_shape(family.init, jax.random.key(0))
    batch = {"x": jax.ShapeDtypeStruct((4, 28, 28, 1), jnp.float32),
             "label": jax.ShapeDtypeStruct((4,), jnp.int32)}
    jaxpr = jax.make_jaxpr(family.train_step)(state, batch, jax.random.key(1)).jaxpr

    def convs(jaxpr, in_loop=False):
        """(number of convolutions, number of them inside a scan/while body)."""
        total = looped = 0
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                total += 1
                looped += in_loop
            loop = in_loop or eqn.primitive.name in ("scan", "while")
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                t, l_ = convs(sub, loop)
                total, looped = total + t, looped + l_
        return total, looped

    total, looped = convs(jaxpr)
    assert total >= 2 * 2 * 3  # two critic updates, each differentiating D on two batches
    assert looped == 0


def test_spectrally_normalised_critic_trains_and_updates_its_power_iteration():
    c = dcgan_mnist.get_config("smoke")
    c.gan.loss, c.gan.d_norm = "hinge", "spectral"  # SNGAN's pairing (Miyato et al. 2018)
    c.gan.g_channels = (8,)
    validation.validate(c)
    family = GANFamily(c, (8, 8, 1))
    state = jax.jit(family.init)(jax.random.key(0))
    batch = {"x": jnp.tanh(jax.random.normal(jax.random.key(1), (8, 8, 8, 1)))}
    new, m = jax.jit(family.train_step)(state, batch, jax.random.key(2))
    assert np.isfinite(float(m["d_loss"])) and np.isfinite(float(m["g_loss"]))
    before, after = state.model_state["discriminator"], new.model_state["discriminator"]
    assert set(before) == {"sn_conv_0", "sn_conv_1", "sn_out"}
    for name in ("conv_0", "conv_1"):  # the read-out's u is a 1-vector: always +-1
        u0, u1 = before[f"sn_{name}"][f"{name}/kernel/u"], after[f"sn_{name}"][f"{name}/kernel/u"]
        assert float(jnp.max(jnp.abs(u1 - u0))) > 0, name


def _squares(labels, rng, side=8):
    """side x side images, background -1, a bright (side/4)^2 square centred in quadrant
    ``label`` (0 top left, 1 top right, 2 bottom left, 3 bottom right), slight noise."""
    x = -np.ones((len(labels), side, side, 1), np.float32)
    half, q = side // 2, side // 4
    for i, k in enumerate(labels):
        r, c = divmod(int(k), 2)
        x[i, r * half + q // 2:r * half + q // 2 + q, c * half + q // 2:c * half + q // 2 + q] = 1
    return x + 0.05 * rng.standard_normal(x.shape).astype(np.float32)


def _brightest_quadrant(x):
    n, side = x.shape[0], x.shape[1]
    q = x[..., 0].reshape(n, 2, side // 2, 2, side // 2).mean(axis=(2, 4))
    return q.reshape(n, 4).argmax(-1)


def test_conditional_dcgan_learns_a_toy_where_the_class_alone_decides_the_layout():
    """Class k puts the square in quadrant k, whatever z is: after 300 steps the EMA
    generator must draw it in the requested quadrant for >= 90% of the samples (an
    unconditional generator scores ~25%)."""
    c = cgan_mnist.get_config()
    c.model.num_classes = 4
    c.gan.latent_dim, c.gan.g_channels, c.gan.d_channels = 16, (16, 8), (8, 16)
    c.optim.learning_rate = c.gan.d_learning_rate = 1e-3
    c.train.num_steps = 300
    family = GANFamily(c, (8, 8, 1))
    state = jax.jit(family.init)(jax.random.key(0))
    step = jax.jit(family.train_step)
    rng = np.random.default_rng(0)
    for i in range(c.train.num_steps):
        labels = rng.integers(0, 4, 64)
        batch = {"x": jnp.asarray(_squares(labels, rng)), "label": jnp.asarray(labels, jnp.int32)}
        state, _ = step(state, batch, jax.random.fold_in(jax.random.key(1), i))
    assert np.mean(_brightest_quadrant(_squares(np.arange(400) % 4, rng))
                   == np.arange(400) % 4) == 1.0  # the check itself reads the layout right
    x = np.asarray(jax.jit(family.sample, static_argnums=2)(state.ema_params,
                                                            jax.random.key(2), 400))
    accuracy = np.mean(_brightest_quadrant(x) == np.asarray(family.sample_labels(400)))
    assert accuracy >= 0.9, accuracy


@pytest.mark.parametrize("name", ["dcgan_mnist", "wgan_mnist", "wgan_gp_mnist", "lsgan_mnist",
                                  "hinge_mnist", "cgan_mnist"])
def test_every_gan_mnist_config_validates_full_and_smoke(name):
    import importlib
    module = importlib.import_module(f"configs.{name}")
    for arg in (None, "smoke"):
        c = module.get_config(arg)
        validation.validate(c)
        assert c.family == "gan" and c.data.name == "mnist"
    c = module.get_config()
    if c.gan.loss == "wgan":  # Arjovsky et al. 2017, Algorithm 1
        assert (c.gan.n_critic, c.gan.d_optimizer, c.gan.clip_value, c.optim.name) == (
            5, "rmsprop", 0.01, "rmsprop")


def test_configs_reject_what_cannot_work():
    c = wgan_gp_mnist.get_config()
    c.gan.d_norm = "batch"
    with pytest.raises(ConfigError, match="gan.d_norm"):
        validation.validate(c)
    c = _toy()
    c.model.num_classes = 10
    with pytest.raises(ConfigError, match="model.num_classes"):
        validation.validate(c)
    c = _toy(n_critic=3, critic_data="split")
    c.train.batch_size = 256
    with pytest.raises(ConfigError, match="gan.critic_data"):
        validation.validate(c)
    c = _toy()
    c.gan.loss = "wgan_gan"
    with pytest.raises(ConfigError, match="gan.loss"):
        validation.validate(c)
    with pytest.raises(ConfigError, match="gan.arch"):
        GANFamily.check_data(_toy(), (8, 8, 1))
    assert gan_family.ARCHS == ("dcgan", "mlp")


def test_gan_trains_through_the_generic_loop(tmp_path):
    c = gan_toy.get_config("smoke")
    c.eval.num_samples = 0
    state = loop.train(c, str(tmp_path / "run"), quiet=True)
    assert int(state.step) == c.train.num_steps
    assert (tmp_path / "run" / "samples.png").exists()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert '"d_loss"' in lines[-1] and '"g_loss"' in lines[-1]


def test_ema_generator_samples_with_its_own_standing_statistics():
    c = dcgan_mnist.get_config("smoke")
    c.gan.g_channels = (8,)  # 4x4 -> 8x8
    family = GANFamily(c, (8, 8, 1))
    state = jax.jit(family.init)(jax.random.key(0))
    g_params = state.params["generator"]
    # EMA weights unlike the live ones, whose running averages (mean 0, var 1) are stored.
    ema = {"params": jax.tree.map(lambda p: 1.5 * p + 0.3, g_params),
           "batch_stats": state.model_state["generator"]}
    n = gan_family.STANDING_STATS_SAMPLES
    z = family.latents(jax.random.key(gan_family._STANDING_SEED), n)
    in_batch, _ = family.generate(ema["params"], ema["batch_stats"], z, None, train=True)
    sampled = jax.jit(family.generate_from)(ema, z)
    # Eval mode on the standing latents normalises with exactly their batch statistics.
    np.testing.assert_allclose(np.asarray(sampled), np.asarray(in_batch), atol=2e-5)
    stale, _ = family.generate(ema["params"], ema["batch_stats"], z, None, train=False)
    assert float(jnp.max(jnp.abs(stale - in_batch))) > 0.1  # the stored averages do not fit
    sample = jax.jit(family.sample, static_argnums=2)
    a, b = sample(ema, jax.random.key(3), 6), sample(ema, jax.random.key(3), 12)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b[:6]), atol=1e-6)
