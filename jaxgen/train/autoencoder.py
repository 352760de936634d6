"""The autoencoder family: the KL-regularised autoencoder of latent diffusion, with an
optional patch discriminator, for the generic loop.

Objective (Rombach et al. 2022, Sec. 3 and App. G; Esser et al. 2021, "Taming
Transformers", Eq. 5-7), per example, with z ~ q(z|x) = N(mean(x), diag exp(logvar(x))):

    L_rec(x, D(z)) + kl_weight * KL(q(z|x) || N(0, I))  [+ lambda * L_G(Disc(D(z)))]

* L_rec sums |x - x_hat| ('l1', Rombach et al.'s pixel term) or (x - x_hat)^2 ('l2') over
  the pixels; the KL (``jaxgen.vae.gaussian_kl``) sums over the latent's positions and
  channels. A tiny kl_weight (~1e-6 in Rombach et al.) keeps the latent near the prior's
  scale while reconstructions stay nearly exact: the lectures' "VAE with very small KL
  prior weight".
* After ``autoencoder.disc_warmup`` steps (Rombach et al.'s ``disc_start``) a patch
  discriminator (``jaxgen.nets.autoencoder.PatchDiscriminator``) is trained with the
  hinge loss (``jaxgen.gan.hinge_discriminator_loss``) against the reconstructions, and
  the autoencoder gets the hinge generator loss weighted adaptively (Esser et al. 2021,
  Eq. 7): lambda = disc_weight * ||grad_L L_rec|| / (||grad_L L_G|| + 1e-4), the gradient
  norms taken at the decoder's last layer L. Before that the discriminator is not run,
  and its parameters and optimizer state do not change. ``disc_weight = 0``: no
  discriminator at all.

State layout: ``params`` and ``opt_state`` are dicts with ``'autoencoder'`` (and
``'discriminator'``); ``ema_params`` is the EMA of the autoencoder's parameters, which
evaluation, ``sample`` and latent diffusion use.

``sample`` returns reconstructions (the decoded posterior means) of the first
eval-split images, so the loop's ``samples.png`` shows what the autoencoder keeps; draws
from the N(0, I) prior decode to little with a KL weight this small, and are not what
latent diffusion samples from.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgen import gan, vae
from jaxgen.errors import ConfigError
from jaxgen.nets.autoencoder import KLAutoencoder, PatchDiscriminator
from jaxgen.train.optim import build_optimizer
from jaxgen.train.state import TrainState, ema_update

RECONSTRUCTIONS = ("l1", "l2")
_AE, _D = "autoencoder", "discriminator"
# Streams folded into a step's key.
_POSTERIOR = 0
# Esser et al. 2021, Eq. 7: delta in the adaptive weight, and the clip on the weight.
_ADAPTIVE_DELTA, _ADAPTIVE_MAX = 1e-4, 1e4
# How many eval-split images ``sample`` reconstructs (cycled beyond).
SAMPLE_IMAGES = 100


def _int_tuple(config, field: str) -> tuple:
    from jaxgen.train.validation import get_field
    v = get_field(config, field)
    if (not isinstance(v, (tuple, list)) or not v
            or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in v)):
        raise ConfigError(field, v, "must be a non-empty tuple of positive integers")
    return tuple(v)


def validate_config(config: ml_collections.ConfigDict) -> None:
    """The ``autoencoder`` section."""
    from jaxgen.train.validation import choice, number, positive_int

    channels = _int_tuple(config, "autoencoder.channels")
    f = positive_int(config, "autoencoder.downsample_factor")
    if f != 2 ** (len(channels) - 1):
        raise ConfigError("autoencoder.downsample_factor", f, f"must be 2^(levels - 1) = "
                          f"{2 ** (len(channels) - 1)} for autoencoder.channels="
                          f"{channels} ({len(channels)} levels; add or remove levels to "
                          f"change the factor)")
    positive_int(config, "autoencoder.latent_channels")
    positive_int(config, "autoencoder.num_res_blocks")
    groups = positive_int(config, "autoencoder.num_groups")
    if any(c % groups for c in channels):
        raise ConfigError("autoencoder.num_groups", groups, f"must divide every entry of "
                          f"autoencoder.channels={channels}")
    choice(config, "autoencoder.reconstruction", RECONSTRUCTIONS)
    number(config, "autoencoder.kl_weight", 0.0, 1e6)
    number(config, "autoencoder.disc_weight", 0.0, 1e6)
    positive_int(config, "autoencoder.disc_warmup", minimum=0)
    _int_tuple(config, "autoencoder.disc_channels")
    number(config, "autoencoder.disc_learning_rate", 0.0, 10.0, lo_open=True)
    positive_int(config, "sampler.num_samples")


def check_data(config: ml_collections.ConfigDict, example_shape) -> None:
    """Images (H, W, C) whose size the downsampling factor divides."""
    shape = tuple(int(d) for d in example_shape)
    if len(shape) != 3:
        raise ConfigError("data.name", config.data.name, f"gives examples of shape {shape}; "
                          "the autoencoder needs images (H, W, C)")
    f = config.autoencoder.downsample_factor
    if shape[0] % f or shape[1] % f:
        raise ConfigError("autoencoder.downsample_factor", f, f"must divide the image size "
                          f"{shape[0]}x{shape[1]} of data.name={config.data.name!r}")


def first_images(data_cfg, split: str, num: int) -> np.ndarray:
    """The first ``num`` images of ``split`` (in the source's order, not shuffled), as
    float32 (n, H, W, C) in [-1, 1]; fewer if the split is smaller."""
    from jaxgen import data

    source = data.make_source(data_cfg.name, split, data_cfg.data_dir)
    idx = np.arange(min(num, len(source)))
    if hasattr(source, "get_batch"):
        images, _ = source.get_batch(idx)
    else:
        images = np.stack([np.asarray(source[int(i)]["image"]) for i in idx])
    return data.preprocess(images)


def psnr(x, y):
    """Peak signal-to-noise ratio per image, in dB, of images in [-1, 1] measured on the
    [0, 1] scale: 10 log10(1 / MSE). (B, ...) -> (B,)."""
    mse = jnp.mean(jnp.reshape((x - y) / 2.0, (x.shape[0], -1)) ** 2, axis=1)
    return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-10))


class AutoencoderFamily:
    """KL autoencoder (+ patch discriminator) training (see the module doc).

    Args:
      config: the run config (sections ``autoencoder``, ``optim``, ``train``, ``data``).
      data_shape: (H, W, C) of one image.
    """

    name = "autoencoder"
    validate_config = staticmethod(validate_config)
    check_data = staticmethod(check_data)

    def __init__(self, config: ml_collections.ConfigDict, data_shape):
        self.config = config
        self.data_shape = tuple(int(d) for d in data_shape)
        a = config.autoencoder
        self.model = KLAutoencoder(out_channels=self.data_shape[-1], channels=tuple(a.channels),
                                   latent_channels=a.latent_channels,
                                   num_res_blocks=a.num_res_blocks, num_groups=a.num_groups)
        f = self.model.downsample_factor
        self.latent_shape = (self.data_shape[0] // f, self.data_shape[1] // f,
                             int(a.latent_channels))
        self.kl_weight = float(a.kl_weight)
        self.disc_weight = float(a.disc_weight)
        self.disc_warmup = int(a.disc_warmup)
        self.adversarial = self.disc_weight > 0
        self.discriminator = (PatchDiscriminator(tuple(a.disc_channels), a.num_groups)
                              if self.adversarial else None)
        self.tx = build_optimizer(config.optim, config.train.num_steps)
        d = ml_collections.ConfigDict(config.optim.to_dict())
        # Rombach et al. train both players with Adam(0.5, 0.9).
        d.learning_rate, d.b1, d.b2 = a.disc_learning_rate, 0.5, 0.9
        self.d_tx = build_optimizer(d, config.train.num_steps)
        self.ema_decay = config.optim.ema_decay
        self._images = None

    # -- state and the networks ------------------------------------------------------------

    def init(self, rng) -> TrainState:
        k_ae, k_d = jax.random.split(rng)
        x = jnp.zeros((1,) + self.data_shape, jnp.float32)
        params = {_AE: self.model.init(k_ae, x)["params"]}
        if self.adversarial:
            params[_D] = self.discriminator.init(k_d, x)["params"]
        opt = {_AE: self.tx.init(params[_AE])}
        if self.adversarial:
            opt[_D] = self.d_tx.init(params[_D])
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt,
                          ema_params=jax.tree.map(jnp.copy, params[_AE]), model_state={})

    def encode(self, params, x):
        """(mean, logvar) of q(z|x), each (B, *latent_shape); ``params``: the
        autoencoder's (e.g. ``state.ema_params``)."""
        return self.model.apply({"params": params}, x, method="encode")

    def decode(self, params, z):
        """Decoder output for latents z (B, *latent_shape): (B, *data_shape), unclipped."""
        return self.model.apply({"params": params}, z, method="decode")

    def reconstruct(self, params, x):
        """The decoded posterior mean, clipped to [-1, 1]."""
        return jnp.clip(self.decode(params, self.encode(params, x)[0]), -1.0, 1.0)

    def reconstruction_loss(self, x, x_hat):
        """Per-example L_rec summed over the pixels: (B,)."""
        d = x_hat - x
        per_value = jnp.abs(d) if self.config.autoencoder.reconstruction == "l1" else d * d
        return vae.sum_per_example(per_value)

    def terms(self, params, x, rng):
        """Per-example (L_rec, KL) with one posterior sample, and the reconstruction."""
        mean, logvar = self.encode(params, x)
        z = vae.sample_gaussian(rng, mean, logvar)
        x_hat = self.decode(params, z)
        return self.reconstruction_loss(x, x_hat), vae.gaussian_kl(mean, logvar), x_hat

    def _patch_logits(self, d_params, x):
        return self.discriminator.apply({"params": d_params}, x).reshape(-1)

    # -- the loop's interface ----------------------------------------------------------------

    def train_step(self, state: TrainState, batch, rng):
        """One update of the autoencoder (and, after the warm-up, of the discriminator).
        Returns (state, metrics): loss, reconstruction, kl, mse, g_loss, d_loss,
        adaptive_weight, grad_norm."""
        x = batch["x"]
        key = jax.random.fold_in(rng, _POSTERIOR)
        ae_params = state.params[_AE]

        def objective(p):
            rec, kl, x_hat = self.terms(p, x, key)
            return jnp.mean(rec + self.kl_weight * kl), (rec, kl, x_hat)

        zero = jnp.zeros((), jnp.float32)
        if not self.adversarial:
            (loss, (rec, kl, x_hat)), grads = jax.value_and_grad(objective, has_aux=True)(
                ae_params)
            d_params = d_opt = None
            extra = {"g_loss": zero, "d_loss": zero, "adaptive_weight": zero}
            d_norm = zero
        else:
            def plain(_):
                (loss, (rec, kl, x_hat)), grads = jax.value_and_grad(
                    objective, has_aux=True)(ae_params)
                return (loss, rec, kl, x_hat, grads, state.params[_D], state.opt_state[_D],
                        {"g_loss": zero, "d_loss": zero, "adaptive_weight": zero,
                         "d_grad_norm": zero})

            def adversarial(_):
                return self._adversarial_update(state, x, key, objective)

            loss, rec, kl, x_hat, grads, d_params, d_opt, extra = jax.lax.cond(
                state.step >= self.disc_warmup, adversarial, plain, None)
            d_norm = extra.pop("d_grad_norm")
        updates, ae_opt = self.tx.update(grads, state.opt_state[_AE], ae_params)
        ae_params = optax.apply_updates(ae_params, updates)
        params, opt = {_AE: ae_params}, {_AE: ae_opt}
        if self.adversarial:
            params[_D], opt[_D] = d_params, d_opt
        new = state.replace(step=state.step + 1, params=params, opt_state=opt,
                            ema_params=ema_update(state.ema_params, ae_params, state.step,
                                                  self.ema_decay))
        g_norm = optax.global_norm(grads)
        return new, {"loss": loss, "reconstruction": jnp.mean(rec), "kl": jnp.mean(kl),
                     "mse": jnp.mean((jnp.clip(x_hat, -1, 1) - x) ** 2), **extra,
                     "grad_norm": jnp.maximum(g_norm, d_norm)}

    def _adversarial_update(self, state, x, key, objective):
        """Gradients of the autoencoder's objective with the adaptively weighted hinge
        generator loss, and one hinge update of the discriminator."""
        d_params = state.params[_D]

        def both(p):
            l_ae, (rec, kl, x_hat) = objective(p)
            l_g = jnp.mean(gan.hinge_generator_loss(self._patch_logits(d_params, x_hat)))
            return (l_ae, l_g), (rec, kl, x_hat)

        (l_ae, l_g), vjp, (rec, kl, x_hat) = jax.vjp(both, state.params[_AE], has_aux=True)
        one, none = jnp.ones((), jnp.float32), jnp.zeros((), jnp.float32)
        g_ae, = vjp((one, none))
        g_g, = vjp((none, one))
        last = lambda g: g["decoder"]["conv_out"]["kernel"]  # noqa: E731
        weight = jnp.linalg.norm(last(g_ae)) / (jnp.linalg.norm(last(g_g)) + _ADAPTIVE_DELTA)
        weight = self.disc_weight * jax.lax.stop_gradient(jnp.clip(weight, 0.0, _ADAPTIVE_MAX))
        grads = jax.tree.map(lambda a, b: a + weight * b, g_ae, g_g)

        fake = jax.lax.stop_gradient(x_hat)

        def d_objective(dp):
            return jnp.mean(gan.hinge_discriminator_loss(self._patch_logits(dp, x),
                                                         self._patch_logits(dp, fake)))

        d_loss, d_grads = jax.value_and_grad(d_objective)(d_params)
        updates, d_opt = self.d_tx.update(d_grads, state.opt_state[_D], d_params)
        d_params = optax.apply_updates(d_params, updates)
        return (l_ae + weight * l_g, rec, kl, x_hat, grads, d_params, d_opt,
                {"g_loss": l_g, "d_loss": d_loss, "adaptive_weight": weight,
                 "d_grad_norm": optax.global_norm(d_grads)})

    def evaluate(self, params, batch, rng):
        """Reconstruction metrics of the posterior mean on ``batch``: ``mse`` (on the
        [-1, 1] scale), ``mse_01`` and ``psnr`` (dB, mean over images) on the [0, 1]
        scale, ``l1``; the objective ``loss`` with a posterior sample and its ``kl``
        (nats per example); ``latent_std`` of posterior samples and the latent diffusion
        ``scale_factor`` = 1 / latent_std it implies for this batch."""
        x = batch["x"]
        rec, kl, _ = self.terms(params, x, jax.random.fold_in(rng, _POSTERIOR))
        x_hat = self.reconstruct(params, x)
        mean, logvar = self.encode(params, x)
        z = vae.sample_gaussian(jax.random.fold_in(rng, 1), mean, logvar)
        std = jnp.std(z)
        mse = jnp.mean((x_hat - x) ** 2)
        return {"loss": jnp.mean(rec + self.kl_weight * kl), "kl": jnp.mean(kl), "mse": mse,
                "mse_01": mse / 4.0, "l1": jnp.mean(jnp.abs(x_hat - x)),
                "psnr": jnp.mean(psnr(x_hat, x)), "latent_std": std, "scale_factor": 1.0 / std}

    def sample_images(self) -> np.ndarray:
        """The eval-split images that ``sample`` reconstructs (read once)."""
        if self._images is None:
            self._images = first_images(self.config.data, self.config.data.eval_split,
                                        SAMPLE_IMAGES)
        return self._images

    def sample(self, params, rng, num: int):
        """Reconstructions (decoded posterior means, in [-1, 1]) of the first ``num``
        eval-split images (cycled when there are fewer). ``rng`` is unused: the
        reconstruction is deterministic. Returns (num, *data_shape)."""
        del rng
        images = jnp.asarray(self.sample_images())
        return self.reconstruct(params, images[jnp.arange(num) % images.shape[0]])


def latent_statistics(family: AutoencoderFamily, params, images, rng,
                      batch_size: int = 250) -> dict:
    """Mean and standard deviation of posterior samples z ~ q(z|x) over every element of
    the latents of ``images`` (N, H, W, C), and the scale factor 1 / std that makes them
    unit-variance for diffusion (Rombach et al. 2022, Sec. 4.3.2 and App. G: the latents
    are rescaled by the component-wise std of a batch; Stable Diffusion's 0.18215).

    The images are encoded in chunks of ``batch_size``; the chunk starting at image s
    draws its noise from ``fold_in(rng, s)``.
    """
    images = np.asarray(images)

    @jax.jit
    def moments(x, key):
        mean, logvar = family.encode(params, x)
        z = vae.sample_gaussian(key, mean, logvar)
        return jnp.sum(z), jnp.sum(z * z)

    total = total_sq = 0.0
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        s, sq = moments(jnp.asarray(chunk), jax.random.fold_in(rng, start))
        total += float(s)
        total_sq += float(sq)
    n = len(images) * math.prod(family.latent_shape)
    mean = total / n
    std = math.sqrt(max(total_sq / n - mean * mean, 0.0))
    return {"latent_mean": mean, "latent_std": std, "scale_factor": 1.0 / std,
            "num_images": int(len(images))}


__all__ = ["AutoencoderFamily", "RECONSTRUCTIONS", "first_images", "latent_statistics",
           "psnr"]
