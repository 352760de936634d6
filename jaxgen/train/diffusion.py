"""The diffusion family for the generic loop: init, train_step, sample, evaluate.

One family trains every process of ``jaxgen.diffusion`` -- discrete DDPM (Ho et al.
2020), the VP and VE SDEs (Song et al. 2021), rectified flow (Liu et al. 2023) and EDM
(Karras et al. 2022) -- with any prediction target, loss weighting and training-time
distribution, optional EDM preconditioning and classifier-free guidance (Ho & Salimans
2022), in pixel space or in the latent space of a trained autoencoder
(``jaxgen.train.latent``), optionally conditioned on a low-resolution image for
super-resolution (``jaxgen.train.conditioning``). The config picks them;
``jaxgen/defaults.py`` lists the fields (``configs/base.py`` re-exports them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgen import diffusion, nets
from jaxgen.core import loops
from jaxgen.train import conditioning
from jaxgen.train import latent as latent_lib
from jaxgen.train.optim import build_optimizer
from jaxgen.train.state import TrainState

PRECONDITIONS = ("none", "edm")

# The backbones' sinusoidal embeddings (frequencies 1 .. 1/10000) suit DDPM's integer steps
# 0..999, so continuous times are mapped onto a range of about 1000 as well: 1000 t for
# t in [0, 1], and 1000 c_noise = 250 log(sigma) for EDM's c_noise = log(sigma)/4 (which
# spans only about [-1.6, 1.1] and would barely turn the low frequencies).
TIME_FEATURE_SCALE = 1000.0

# Stream folded into the step key for label dropout: the loss keeps the two-way split of
# the key it has always used, so unconditional runs see the same randomness as before.
_LABEL_DROPOUT_STREAM = 0x1ABE1
_LIKELIHOOD_STREAM = 0xB0D
_LATENT_STREAM = 0x1A7E


def make_process(d: ml_collections.ConfigDict):
    """The process described by the config section ``d`` (``config.diffusion``)."""
    if d.process == "ddpm":
        return diffusion.make_process("ddpm", schedule=d.schedule, num_timesteps=d.num_timesteps,
                                      beta_start=d.beta_start, beta_end=d.beta_end)
    if d.process == "vp":
        return diffusion.make_process("vp", beta_min=d.beta_min, beta_max=d.beta_max)
    kwargs = {}
    if d.process in ("ve", "edm"):
        # None keeps the process's own default (VE 0.01/50, EDM 0.002/80).
        kwargs = {k: d[k] for k in ("sigma_min", "sigma_max") if d[k] is not None}
    if d.process == "edm":
        kwargs["sigma_data"] = d.sigma_data
    return diffusion.make_process(d.process, **kwargs)


class DiffusionFamily:
    """Denoising training of a backbone under any diffusion process.

    The network sees time as a feature (``time_features``): the integer step of a
    discrete process, a scaled float otherwise. With ``diffusion.precondition='edm'`` it
    is wrapped as EDM's denoiser (``diffusion.edm_precondition``) and sees 1000 c_noise.
    With ``model.num_classes > 0`` it is conditioned on ``batch['label']``; label
    ``num_classes`` means "no class", which ``diffusion.label_dropout`` substitutes
    during training so that sampling can apply classifier-free guidance.

    With ``latent.autoencoder_workdir`` the network works on the autoencoder's scaled
    latents (``model_shape``) and ``sample`` decodes them to images. With
    ``diffusion.condition='low_res'`` it also sees, concatenated to x_t, the bicubic
    upsampling of the area-downsampled image (``cond``); ``sample`` super-resolves the
    first eval-split images.

    Args:
      config: the run config (sections ``model``, ``diffusion``, ``sampler``, ``optim``,
        ``train``).
      data_shape: shape of one example, e.g. (H, W, C) or (D,).
    """

    name = "diffusion"

    @staticmethod
    def validate_config(config: ml_collections.ConfigDict) -> None:
        from jaxgen.train import validation
        validation.validate_diffusion_config(config)
        conditioning.validate_config(config)
        latent_lib.validate_config(config)

    @staticmethod
    def check_data(config: ml_collections.ConfigDict, example_shape) -> None:
        from jaxgen.train import validation
        if latent_lib.enabled(config):
            example_shape = latent_lib.check_autoencoder_run(config, example_shape)
        conditioning.check_data(config, example_shape)
        validation.check_diffusion_data(config, example_shape)

    def __init__(self, config: ml_collections.ConfigDict, data_shape):
        self.config = config
        self.data_shape = tuple(data_shape)
        d = config.diffusion
        self.process = make_process(d)
        self.prediction = d.prediction
        self.num_classes = int(config.model.num_classes)
        self.label_dropout = float(d.label_dropout)
        self.t_sampler = diffusion.time_sampler(self.process, d.time_sampler, mean=d.time_mean,
                                                std=d.time_std, shift=d.time_shift)
        self.latent = latent_lib.LatentSpace(config) if latent_lib.enabled(config) else None
        # The shape the network denoises: the data's, or the autoencoder's latent.
        self.model_shape = self.latent.latent_shape if self.latent else self.data_shape
        self.low_res = conditioning.low_res_size(config)
        self._sr_images = None
        self.model = nets.build(config.model, out_channels=self.model_shape[-1],
                                num_classes=self.num_classes or None)
        self.tx = build_optimizer(config.optim, config.train.num_steps)
        self.ema_decay = config.optim.ema_decay
        self.compute_dtype = jnp.dtype(config.train.compute_dtype)
        self.grad_accum_steps = int(config.train.grad_accum_steps)

    @property
    def time_dtype(self):
        return jnp.int32 if self.process.discrete else jnp.float32

    def init(self, rng) -> TrainState:
        channels = self.model_shape[-1] * (2 if self.low_res else 1)
        x = jnp.zeros((1,) + self.model_shape[:-1] + (channels,), jnp.float32)
        t = jnp.zeros((1,), self.time_dtype)
        label = jnp.zeros((1,), jnp.int32) if self.num_classes else None
        params = self.model.init(rng, x, t, label)["params"]
        return TrainState.create(params, self.tx)

    def time_features(self, t):
        """What the network is given for time t: the step of a discrete process, else a
        float spanning about [0, 1000] (see TIME_FEATURE_SCALE)."""
        if self.process.discrete:
            return t
        if isinstance(self.process, diffusion.EDMProcess):  # t = sigma in (0, 80]
            return (TIME_FEATURE_SCALE / 4.0) * jnp.log(t)
        return TIME_FEATURE_SCALE * t

    def denoiser(self, params, *, train=False, rng=None, cond=None):
        """Closes over params: (x_t, t, labels=None) -> prediction of ``self.prediction``.

        ``labels=None`` gives the unconditional prediction of a class-conditional model.
        ``cond`` (B, H, W, C): the upsampled low-res images of a super-resolution model,
        concatenated to x_t along the channels.
        """
        rngs = {"dropout": rng} if rng is not None else None

        def net(x, features, labels=None):
            if cond is not None:
                x = jnp.concatenate([x, cond.astype(x.dtype)], axis=-1)
            p = params
            if self.compute_dtype != jnp.float32:
                # Mixed precision: the network computes in bf16 from a bf16 copy of the
                # float32 parameters (whose gradients come back through the cast); the
                # time features stay float32, and so does everything outside the network.
                p = jax.tree.map(lambda a: a.astype(self.compute_dtype), params)
                x = x.astype(self.compute_dtype)
            out = self.model.apply({"params": p}, x, features, labels, train=train,
                                   rngs=rngs)
            return out.astype(jnp.float32)

        if self.config.diffusion.precondition == "edm":
            return diffusion.edm_precondition(
                lambda x, c_noise, labels=None: net(x, TIME_FEATURE_SCALE * c_noise, labels),
                self.process, self.config.diffusion.sigma_data)
        return lambda x, t, labels=None: net(x, self.time_features(t), labels)

    def model_fn(self, params, labels=None, *, train=False, rng=None, cond=None):
        """Closes over params (and labels, cond): (x_t, t) -> prediction, the
        sampler/loss interface of ``jaxgen.diffusion``."""
        fn = self.denoiser(params, train=train, rng=rng, cond=cond)
        return lambda x, t: fn(x, t, labels)

    def sample_labels(self, num: int):
        """Labels 0, 1, ..., num_classes - 1, 0, 1, ...: in a grid ``num_classes`` wide
        each column is one class. None for an unconditional model."""
        if not self.num_classes:
            return None
        return jnp.arange(num, dtype=jnp.int32) % self.num_classes

    def guided_model_fn(self, params, labels, cond=None):
        """The model the sampler runs: conditional on ``labels`` (and ``cond``), with
        classifier-free guidance of weight ``sampler.guidance_weight`` when the model was
        trained with label dropout."""
        w = self.config.sampler.guidance_weight
        if labels is None or not (self.label_dropout > 0 and w != 0):
            return self.model_fn(params, labels, cond=cond)
        return diffusion.classifier_free_guidance(self.denoiser(params, cond=cond), labels, w,
                                                  null_label=self.num_classes)

    def model_inputs(self, batch, rng, positions=None):
        """(x, cond) the denoiser is trained on for ``batch``: the images, or their scaled
        latents (noise from ``rng``, per example ``positions``); and the upsampled low-res
        images of a super-resolution model (else None)."""
        x = batch["x"]
        cond = conditioning.condition_from_images(x, self.low_res) if self.low_res else None
        if self.latent is not None:
            x = self.latent.encode(x, jax.random.fold_in(rng, _LATENT_STREAM), positions)
        return x, cond

    def loss(self, params, batch, rng, positions=None):
        """Mean denoising loss of ``batch``; ``positions`` (B,) are its examples' places
        in the step's batch when it is a micro-batch (they pick each example's noise)."""
        k_loss, k_drop = jax.random.split(rng)
        labels = None
        if self.num_classes:
            labels = batch["label"]
            if self.label_dropout > 0:
                labels = diffusion.drop_labels(jax.random.fold_in(rng, _LABEL_DROPOUT_STREAM),
                                               labels, self.label_dropout, self.num_classes,
                                               positions=positions)
        d = self.config.diffusion
        x, cond = self.model_inputs(batch, rng, positions)
        per_example = diffusion.denoising_loss(
            self.model_fn(params, labels, train=True, rng=k_drop, cond=cond), self.process, x,
            k_loss, prediction=self.prediction, weighting=d.weighting,
            t_sampler=self.t_sampler, gamma=d.min_snr_gamma, sigma_data=d.sigma_data,
            positions=positions)
        return jnp.mean(per_example)

    def loss_and_grads(self, params, batch, rng):
        """The mean loss of the batch and its gradients, accumulated over
        ``train.grad_accum_steps`` micro-batches when that is > 1 (``jaxgen.core.loops.scan``:
        a ``lax.scan``, unrolled on CPU).

        Micro-batch i holds examples i, i + k, i + 2k, ... of the batch (k micro-batches):
        strided, so that each keeps the batch's split over the devices, and each example
        draws the noise it would draw in the whole batch. The result equals the
        whole-batch gradient up to the order of floating-point sums (with dropout off:
        dropout masks depend on the micro-batch's shape).
        """
        k = self.grad_accum_steps
        if k == 1:
            return jax.value_and_grad(self.loss)(params, batch, rng)
        size = batch["x"].shape[0] // k
        micro = jax.tree.map(lambda v: jnp.swapaxes(v.reshape((size, k) + v.shape[1:]), 0, 1),
                             batch)

        def body(total, inputs):
            i, mb = inputs
            positions = i + k * jnp.arange(size)
            loss, grads = jax.value_and_grad(self.loss)(params, mb, rng, positions)
            return jax.tree.map(jnp.add, total, (loss, grads)), None

        zero = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
        total, _ = loops.scan(body, zero, (jnp.arange(k), micro))
        return jax.tree.map(lambda v: v / k, total)

    def train_step(self, state: TrainState, batch, rng):
        """One optimizer step on the mean denoising loss. Returns (state, metrics)."""
        loss, grads = self.loss_and_grads(state.params, batch, rng)
        state = state.apply_gradients(grads, self.tx, self.ema_decay)
        return state, {"loss": loss, "grad_norm": optax.global_norm(grads)}

    def sampler_kwargs(self) -> dict:
        """Keyword arguments of ``diffusion.sample`` from the config's ``sampler`` section."""
        s = self.config.sampler
        kwargs = {"method": s.method, "prediction": self.prediction,
                  "clip_x0": s.clip_x0 if s.clip_x0 > 0 else None,
                  "num_steps": s.num_steps or None, "spacing": s.spacing or None}
        if s.method == "ddpm":
            kwargs["variance"] = s.variance
        elif s.method == "ddim":
            kwargs["eta"] = s.eta
        elif s.method == "pc":
            kwargs.update(snr=s.snr, corrector_steps=s.corrector_steps)
        return kwargs

    def sample(self, params, rng, num: int):
        """Draws ``num`` samples with the configured sampler (decoded to images in latent
        diffusion; for super-resolution, the super-resolved low-res versions of the first
        ``num`` eval-split images, see ``sr_images``). Returns (num, *data_shape)."""
        if self.low_res:
            images = jnp.asarray(self.sr_images())
            images = images[jnp.arange(num) % images.shape[0]]
            return self.super_resolve(params, conditioning.area_downsample(images, self.low_res),
                                      rng)
        k_init, k_sample = jax.random.split(rng)
        x_T = diffusion.prior_noise(self.process, k_init, (num,) + self.model_shape)
        model_fn = self.guided_model_fn(params, self.sample_labels(num))
        out = diffusion.sample(model_fn, self.process, x_T, k_sample, **self.sampler_kwargs())
        return self.latent.decode(out) if self.latent is not None else out

    def sr_images(self):
        """The high-res eval-split images whose low-res versions ``sample`` super-resolves:
        the first 100 (read once)."""
        if self._sr_images is None:
            from jaxgen.train.autoencoder import first_images
            self._sr_images = first_images(self.config.data, self.config.data.eval_split, 100)
        return self._sr_images

    def super_resolve(self, params, low_res, rng):
        """Samples (B, *data_shape) conditioned on low-res images (B, h, w, C) in [-1, 1]
        (``conditioning.super_resolve``)."""
        expected = (self.low_res, self.data_shape[1] * self.low_res // self.data_shape[0],
                    self.data_shape[2])
        if tuple(low_res.shape[1:]) != expected:
            raise ValueError(f"low_res must be (B, {', '.join(map(str, expected))}), got "
                             f"{tuple(low_res.shape)}")
        num = low_res.shape[0]
        cond = conditioning.upsample(low_res, (num,) + self.data_shape)
        k_init, k_sample = jax.random.split(rng)
        x_T = diffusion.prior_noise(self.process, k_init, (num,) + self.data_shape)
        return diffusion.sample(self.model_fn(params, cond=cond), self.process, x_T, k_sample,
                                **self.sampler_kwargs())

    def evaluate(self, params, batch, rng):
        """Mean denoising loss of ``params`` on ``batch`` (fixed rng -> comparable).

        With ``eval.likelihood`` (discrete DDPM only) also the variational bound on the
        negative log-likelihood in bits/dim (Ho et al. 2020, Eq. 5 and Table 2) with the
        sampler's reverse variance and, for images, the discretized Gaussian decoder (a
        bound on the 8-bit likelihood); for points (D,) a Gaussian decoder (a bound on a
        density, which can be negative): ``bpd`` and its
        parts ``bpd_prior`` (L_T), ``bpd_diffusion`` (sum of L_{t-1}) and ``bpd_decoder``
        (L_0). A class-conditional model gives the bound of p(x | label). A
        super-resolution model also reports ``psnr_sr`` of its samples and
        ``psnr_nearest`` / ``psnr_bicubic`` of plain upsampling against the batch
        (``conditioning.sr_psnr``).
        """
        out = {"loss": self.loss(params, batch, rng)}
        if self.low_res:
            out.update(conditioning.sr_psnr(self, params, batch["x"], rng))
        if self.config.eval.likelihood:
            labels = batch["label"] if self.num_classes else None
            bound = diffusion.variational_bound(
                self.model_fn(params, labels), self.process, batch["x"],
                jax.random.fold_in(rng, _LIKELIHOOD_STREAM), prediction=self.prediction,
                variance=self.config.sampler.variance,
                decoder="discretized" if len(self.data_shape) == 3 else "gaussian")
            out.update({"bpd" if k == "total" else f"bpd_{k}": jnp.mean(v)
                        for k, v in bound.items() if k != "terms"})
        return out
