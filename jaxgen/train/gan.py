"""The GAN family for the generic loop: two players, two optimizers, n_critic.

One loop step is one generator update preceded by ``gan.n_critic`` discriminator
updates (Arjovsky et al. 2017, Algorithm 1; Gulrajani et al. 2017, Algorithm 1; with
n_critic = 1 it is the alternating scheme of Goodfellow et al. 2014, Algorithm 1).

* Losses: ``jaxgen.gan`` (``gan.loss``: minimax, non_saturating, wgan (weight clipping,
  ``weight_clipping`` below, after every critic update), wgan_gp (gradient penalty,
  weight ``gan.gp_weight``), lsgan, hinge; optional R1 with ``gan.r1_weight``).
* Optimizers: the generator's from ``optim.*`` (learning rate, betas, EMA decay), the
  discriminator's from ``gan.d_*`` -- separate learning rates (TTUR, Heusel et al. 2017).
* Data: every critic update sees the step's whole real batch (``gan.critic_data='reuse'``,
  with fresh z each time), or its own 1/n_critic slice of it (``'split'``).
* Batch normalisation is functional: the state's ``model_state`` holds both players'
  ``batch_stats``. In training both players run in training mode (batch statistics);
  the discriminator sees the real and the generated batch in separate calls, as in
  DCGAN. The generator's running averages are updated only by its own update step.
* Sampling: ``state.ema_params`` = ``{'params': EMA of the generator's parameters,
  'batch_stats': the live generator's running averages}``; ``sample`` runs the generator
  in evaluation mode. Running averages collected by the live generator do not describe
  the EMA generator's activations (its weights differ), so a batch-normalised generator
  samples with *standing statistics* (Brock et al. 2019, app. C.1): the batch statistics
  of one training-mode pass of the EMA weights over ``STANDING_STATS_SAMPLES`` fixed
  latents (classes cycling), computed at sampling time.

State layout: ``params``, ``opt_state`` and ``model_state`` are dicts with keys
``'generator'`` and ``'discriminator'``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgen import gan, metrics
from jaxgen.core import loops
from jaxgen.nets.dcgan import NORMS, DCGANDiscriminator, DCGANGenerator
from jaxgen.nets.gan_mlp import MLPDiscriminator, MLPGenerator
from jaxgen.train.optim import build_optimizer
from jaxgen.train.state import TrainState, ema_update

ARCHS = ("dcgan", "mlp")
CRITIC_DATA = ("reuse", "split")
D_OPTIMIZERS = ("adam", "rmsprop")
_G, _D = "generator", "discriminator"
# Stream of the generator update's key: fold_in(rng, i) for the i-th critic update,
# fold_in(rng, _G_STREAM) for the generator's.
_G_STREAM = 0x6E4
# Standing statistics: latents from key(_STANDING_SEED), this many of them.
STANDING_STATS_SAMPLES = 1024
_STANDING_SEED = 0x57A


class WeightClipState(optax.EmptyState):
    pass


def weight_clipping(clip_value: float) -> optax.GradientTransformation:
    """An optax transform that makes every update land the parameters in [-c, c] (the
    critic's weight clipping of Arjovsky et al. 2017, Algorithm 1, line 7).

    Clipping is a projection of the parameters after the step, so this transform must be
    the last of a chain: it turns the incoming updates u into ``clip(p + u) - p``. The
    float sum ``p + (clip(p + u) - p)`` can round past c by an ulp; such an update is then
    moved one ulp towards the box (up to 4 times), so ``optax.apply_updates`` returns
    parameters in [-c, c] exactly (tested from far outside the box).
    """
    if not clip_value > 0:
        raise ValueError(f"clip_value must be > 0, got {clip_value}")

    def init(params):
        del params
        return WeightClipState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("weight_clipping needs the parameters (pass params to update)")

        def leaf(u, p):
            c = jnp.asarray(clip_value, p.dtype)
            d = jnp.clip(p + u, -c, c) - p
            for _ in range(4):
                r = p + d
                d = jnp.where(r > c, jnp.nextafter(d, -jnp.inf),
                              jnp.where(r < -c, jnp.nextafter(d, jnp.inf), d))
            return d

        return jax.tree.map(leaf, updates, params), state

    return optax.GradientTransformation(init, update)


def _d_optimizer(config) -> optax.GradientTransformation:
    g = config.gan
    steps = config.train.num_steps * g.n_critic
    if g.d_optimizer == "rmsprop":  # the WGAN paper's choice (momentum hurt its critic)
        tx = optax.rmsprop(g.d_learning_rate)
    else:
        cfg = ml_collections.ConfigDict(config.optim.to_dict())
        cfg.name, cfg.learning_rate, cfg.b1, cfg.b2 = "adam", g.d_learning_rate, g.d_b1, g.d_b2
        tx = build_optimizer(cfg, steps)
    if g.loss == "wgan":
        tx = optax.chain(tx, weight_clipping(g.clip_value))
    return tx


def build_players(config, data_shape):
    """(generator, discriminator) Flax modules of the config's ``gan`` section."""
    g, classes = config.gan, int(config.model.num_classes)
    if g.arch == "mlp":
        return (MLPGenerator(out_dim=data_shape[-1], hidden_dim=g.hidden_dim,
                             num_layers=g.num_layers),
                MLPDiscriminator(hidden_dim=g.hidden_dim, num_layers=g.num_layers))
    return (DCGANGenerator(out_shape=tuple(data_shape), channels=tuple(g.g_channels),
                           num_classes=classes),
            DCGANDiscriminator(channels=tuple(g.d_channels), norm=g.d_norm, num_classes=classes))


def _variables(params, stats):
    return {"params": params, **({"batch_stats": stats} if stats else {})}


class GANFamily:
    """Adversarial training of a generator against a discriminator (see module doc).

    Args:
      config: the run config (sections ``gan``, ``model`` (only ``num_classes``),
        ``optim`` (the generator's optimizer and EMA), ``train``).
      data_shape: shape of one example, (H, W, C) for 'dcgan', (D,) for 'mlp'.
    """

    name = "gan"

    @staticmethod
    def validate_config(config: ml_collections.ConfigDict) -> None:
        from jaxgen.errors import ConfigError
        from jaxgen.train.validation import choice, get_field, number, positive_int
        loss = choice(config, "gan.loss", gan.LOSSES)
        arch = choice(config, "gan.arch", ARCHS)
        positive_int(config, "gan.latent_dim")
        for field in ("gan.g_channels", "gan.d_channels"):
            v = get_field(config, field)
            if (not isinstance(v, (tuple, list)) or not v
                    or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in v)):
                raise ConfigError(field, v, "must be a non-empty tuple of positive integers")
        norm = choice(config, "gan.d_norm", NORMS)
        positive_int(config, "gan.hidden_dim")
        positive_int(config, "gan.num_layers")
        n_critic = positive_int(config, "gan.n_critic")
        if choice(config, "gan.critic_data", CRITIC_DATA) == "split":
            batch = get_field(config, "train.batch_size")
            if isinstance(batch, int) and batch % n_critic:
                raise ConfigError("gan.critic_data", "split", f"needs train.batch_size "
                                  f"({batch}) divisible by gan.n_critic ({n_critic})")
        d_opt = choice(config, "gan.d_optimizer", D_OPTIMIZERS)
        number(config, "gan.d_learning_rate", 0.0, 10.0, lo_open=True)
        number(config, "gan.d_b1", 0.0, 1.0, hi_open=True)
        number(config, "gan.d_b2", 0.0, 1.0, hi_open=True)
        number(config, "gan.gp_weight", 0.0, 1e6)
        r1 = number(config, "gan.r1_weight", 0.0, 1e6)
        number(config, "gan.clip_value", 0.0, 1e6, lo_open=True)
        if d_opt == "rmsprop" and loss != "wgan":
            raise ConfigError("gan.d_optimizer", d_opt, "'rmsprop' is meant for gan.loss="
                              "'wgan' (weight clipping); use 'adam'")
        penalised = loss == "wgan_gp" or r1 > 0
        if penalised and arch == "dcgan" and norm == "batch":
            raise ConfigError("gan.d_norm", norm, "must be 'layer' or 'none' with a gradient "
                              "penalty (gan.loss='wgan_gp' or gan.r1_weight > 0): batch norm "
                              "mixes the examples' input gradients")
        classes = positive_int(config, "model.num_classes", minimum=0)
        if classes and arch != "dcgan":
            raise ConfigError("model.num_classes", classes, "must be 0 with gan.arch='mlp' "
                              "(the conditional players are the DCGAN ones)")

    @staticmethod
    def check_data(config: ml_collections.ConfigDict, example_shape) -> None:
        from jaxgen.errors import ConfigError
        shape = tuple(example_shape)
        if config.gan.arch == "mlp" and len(shape) != 1:
            raise ConfigError("gan.arch", "mlp", f"needs points (D,), but data.name="
                              f"{config.data.name!r} gives examples of shape {shape}")
        if config.gan.arch == "dcgan":
            if len(shape) != 3:
                raise ConfigError("gan.arch", "dcgan", f"needs images (H, W, C), but data.name="
                                  f"{config.data.name!r} gives examples of shape {shape}")
            factor = 2 ** len(config.gan.g_channels)
            if shape[0] % factor or shape[1] % factor:
                raise ConfigError("gan.g_channels", tuple(config.gan.g_channels),
                                  f"{len(config.gan.g_channels)} upsamplings need an image "
                                  f"size divisible by {factor}, got {shape[0]}x{shape[1]}")

    def __init__(self, config: ml_collections.ConfigDict, data_shape):
        self.config = config
        self.data_shape = tuple(data_shape)
        g = config.gan
        self.loss_name = g.loss
        self.latent_dim = int(g.latent_dim)
        self.n_critic = int(g.n_critic)
        self.num_classes = int(config.model.num_classes)
        self.generator, self.discriminator = build_players(config, self.data_shape)
        self.g_tx = build_optimizer(config.optim, config.train.num_steps)
        self.d_tx = _d_optimizer(config)
        self.ema_decay = config.optim.ema_decay

    # -- randomness ----------------------------------------------------------------------

    def latents(self, rng, num: int):
        """(num, latent_dim) standard normal; row i from ``fold_in(rng, i)`` (independent of
        num)."""
        keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(num))
        return jax.vmap(lambda k: jax.random.normal(k, (self.latent_dim,)))(keys)

    def fake_labels(self, rng, num: int):
        """Uniform random classes for generated examples (None if unconditional). Their key
        is split from ``rng``, not folded in: ``latents`` folds in the row index, so a
        folded-in constant would reuse the random bits of one latent row."""
        if not self.num_classes:
            return None
        return jax.random.randint(jax.random.split(rng)[1], (num,), 0, self.num_classes)

    def sample_labels(self, num: int):
        """0, 1, ..., num_classes - 1, 0, ...: in a grid num_classes wide each column is a
        class. None if unconditional."""
        if not self.num_classes:
            return None
        return jnp.arange(num, dtype=jnp.int32) % self.num_classes

    # -- state ---------------------------------------------------------------------------

    def init(self, rng) -> TrainState:
        k_g, k_d = jax.random.split(rng)
        z = jnp.zeros((2, self.latent_dim))
        labels = jnp.zeros((2,), jnp.int32) if self.num_classes else None
        g_vars = self.generator.init(k_g, z, labels, train=False)
        x = jnp.zeros((2,) + self.data_shape)
        d_vars = self.discriminator.init(k_d, x, labels, train=False)
        params = {_G: g_vars["params"], _D: d_vars["params"]}
        stats = {_G: g_vars.get("batch_stats", {}), _D: d_vars.get("batch_stats", {})}
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state={_G: self.g_tx.init(params[_G]),
                                     _D: self.d_tx.init(params[_D])},
                          ema_params={"params": jax.tree.map(jnp.copy, params[_G]),
                                      "batch_stats": jax.tree.map(jnp.copy, stats[_G])},
                          model_state=stats)

    # -- the players ---------------------------------------------------------------------

    def generate(self, g_params, g_stats, z, labels, *, train: bool):
        """G(z) (and the new batch_stats in training mode)."""
        if train:
            x, new = self.generator.apply(_variables(g_params, g_stats), z, labels, train=True,
                                          mutable=["batch_stats"])
            return x, new.get("batch_stats", {})
        return self.generator.apply(_variables(g_params, g_stats), z, labels, train=False), g_stats

    def discriminate(self, d_params, d_stats, x, labels):
        """D(x) in training mode: (B,) outputs and the new batch_stats."""
        out, new = self.discriminator.apply(_variables(d_params, d_stats), x, labels, train=True,
                                            mutable=["batch_stats"])
        return out, new.get("batch_stats", {})

    def d_loss(self, d_params, d_stats, real, real_labels, fake, fake_labels, rng):
        """Mean discriminator loss (+ penalties); aux = (new batch_stats, metrics)."""
        out_real, d_stats = self.discriminate(d_params, d_stats, real, real_labels)
        out_fake, d_stats = self.discriminate(d_params, d_stats, fake, fake_labels)
        loss = jnp.mean(gan.discriminator_loss(self.loss_name, out_real, out_fake))
        extra = {}
        g = self.config.gan
        if self.loss_name == "wgan_gp":
            # Interpolates pair real i with fake i; with labels, the pair keeps the real one.
            critic = lambda v: self.discriminate(d_params, d_stats, v, real_labels)[0]  # noqa
            gp = jnp.mean(gan.gradient_penalty(critic, real, fake, rng))
            loss = loss + g.gp_weight * gp
            extra["gradient_penalty"] = gp
        if g.r1_weight > 0:
            disc = lambda v: self.discriminate(d_params, d_stats, v, real_labels)[0]  # noqa
            r1 = jnp.mean(gan.r1_penalty(disc, real))
            loss = loss + 0.5 * g.r1_weight * r1
            extra["r1_penalty"] = r1
        extra["d_real"] = jnp.mean(out_real)
        extra["d_fake"] = jnp.mean(out_fake)
        return loss, (d_stats, extra)

    def g_loss(self, g_params, g_stats, d_params, d_stats, z, labels):
        """Mean generator loss; aux = the generator's new batch_stats. The
        discriminator's batch_stats from this pass are discarded."""
        fake, g_stats = self.generate(g_params, g_stats, z, labels, train=True)
        out, _ = self.discriminate(d_params, d_stats, fake, labels)
        return jnp.mean(gan.generator_loss(self.loss_name, out)), g_stats

    # -- the loop's interface ------------------------------------------------------------

    def train_step(self, state: TrainState, batch, rng):
        """n_critic discriminator updates, then one generator update. Returns
        (state, metrics) with d_loss (mean over the critic updates), g_loss, loss (=
        d_loss), the gradient norms of both players (largest over the critic updates)."""
        x = batch["x"]
        labels = batch.get("label") if self.num_classes else None
        num = x.shape[0]
        split = self.config.gan.critic_data == "split"
        if split:
            chunk = num // self.n_critic
            xs = x.reshape((self.n_critic, chunk) + x.shape[1:])
            ls = labels.reshape(self.n_critic, chunk) if labels is not None else None
        g_params, g_stats = state.params[_G], state.model_state[_G]

        def critic_update(carry, i):
            d_params, d_stats, d_opt = carry
            key = jax.random.fold_in(rng, i)
            real = xs[i] if split else x
            real_labels = (ls[i] if split else labels) if labels is not None else None
            n = real.shape[0]
            k_z, k_gp = jax.random.split(key)
            f_labels = self.fake_labels(k_z, n)
            fake, _ = self.generate(g_params, g_stats, self.latents(k_z, n), f_labels,
                                    train=True)
            fake = jax.lax.stop_gradient(fake)
            (loss, (d_stats, extra)), grads = jax.value_and_grad(self.d_loss, has_aux=True)(
                d_params, d_stats, real, real_labels, fake, f_labels, k_gp)
            updates, d_opt = self.d_tx.update(grads, d_opt, d_params)
            d_params = optax.apply_updates(d_params, updates)
            return (d_params, d_stats, d_opt), {"d_loss": loss, "d_grad_norm":
                                                 optax.global_norm(grads), **extra}

        (d_params, d_stats, d_opt), d_metrics = loops.scan(
            critic_update, (state.params[_D], state.model_state[_D], state.opt_state[_D]),
            jnp.arange(self.n_critic))

        k_g = jax.random.fold_in(rng, _G_STREAM)
        z = self.latents(k_g, num)
        f_labels = self.fake_labels(k_g, num)
        (g_loss, g_stats), g_grads = jax.value_and_grad(self.g_loss, has_aux=True)(
            g_params, g_stats, d_params, d_stats, z, f_labels)
        updates, g_opt = self.g_tx.update(g_grads, state.opt_state[_G], g_params)
        g_params = optax.apply_updates(g_params, updates)
        ema = {"params": ema_update(state.ema_params["params"], g_params, state.step,
                                    self.ema_decay),
               "batch_stats": g_stats}
        new = state.replace(step=state.step + 1, params={_G: g_params, _D: d_params},
                            opt_state={_G: g_opt, _D: d_opt}, ema_params=ema,
                            model_state={_G: g_stats, _D: d_stats})
        out = {k: jnp.mean(v) for k, v in d_metrics.items()}
        out["d_grad_norm"] = jnp.max(d_metrics["d_grad_norm"])
        g_norm = optax.global_norm(g_grads)
        out.update(g_loss=g_loss, loss=out["d_loss"], g_grad_norm=g_norm,
                   grad_norm=jnp.maximum(out["d_grad_norm"], g_norm))
        return new, out

    def standing_stats(self, g_params, g_stats):
        """Batch-norm statistics of the generator with parameters ``g_params``: the batch
        mean and variance of every normalised layer over ``STANDING_STATS_SAMPLES`` fixed
        latents (``fold_in(key(_STANDING_SEED), i)``, classes cycling 0..K-1), i.e. the
        running averages a pass with momentum 0 stores. ``g_stats`` gives the tree's
        structure; an empty tree (no batch norm) is returned as is."""
        if not jax.tree.leaves(g_stats):
            return g_stats
        num = STANDING_STATS_SAMPLES
        z = self.latents(jax.random.key(_STANDING_SEED), num)
        zero = jax.tree.map(jnp.zeros_like, g_stats)
        _, new = self.generator.clone(bn_momentum=0.0).apply(
            _variables(g_params, zero), z, self.sample_labels(num), train=True,
            mutable=["batch_stats"])
        return new["batch_stats"]

    def generate_from(self, params, z, labels=None):
        """G(z) of the sampling parameters (``state.ema_params``) in evaluation mode, with
        the standing statistics of those parameters (module doc).
        z: (B, latent_dim); labels: (B,) for a conditional generator."""
        if self.num_classes and labels is None:
            labels = self.sample_labels(z.shape[0])
        stats = self.standing_stats(params["params"], params["batch_stats"])
        return self.generate(params["params"], stats, z, labels, train=False)[0]

    def sample(self, params, rng, num: int):
        """``num`` samples G(z), z ~ N(0, I) (row i from fold_in(rng, i)); classes cycle
        0..K-1 for a conditional generator. Returns (num, *data_shape)."""
        return self.generate_from(params, self.latents(rng, num), self.sample_labels(num))

    def evaluate(self, params, batch, rng):
        """Energy distance (Szekely & Rizzo 2013) between the batch and as many samples,
        flattened: a sample-quality number that needs no discriminator."""
        x = batch["x"]
        fake = self.sample(params, rng, x.shape[0])
        flat = lambda a: a.reshape(a.shape[0], -1)  # noqa: E731
        return {"energy_distance": metrics.energy_distance(flat(fake), flat(x))}
