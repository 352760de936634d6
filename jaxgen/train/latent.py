"""Latent diffusion: any diffusion or flow config runs in the latent space of a trained
KL autoencoder (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent
Diffusion Models"; the lectures: train encoder + decoder, then "sample random latent,
iteratively apply the diffusion model to remove noise, run the decoder to get an image").

With ``latent.autoencoder_workdir`` set, the diffusion family loads that run's frozen
autoencoder (its EMA parameters, through ``jaxgen.load``) and

* trains the denoiser on scaled posterior samples ``scale_factor * z``, z ~ q(z|x),
  encoding each batch on the fly inside the jitted step (the encoder is a small part of
  the step's cost; a fresh z per step also sees the posterior's spread);
* samples in the latent space and decodes, so ``sample()`` returns images in [-1, 1] and
  ``samples.png`` and the sample-quality metrics are in pixel space.

``scale_factor`` (Rombach et al., Sec. 4.3.2 and App. G; Stable Diffusion's 0.18215) is
``latent.scale_factor`` when given, else 1 / std of the latents of the first
``latent.scale_images`` images of the autoencoder's own training split, estimated once
and recorded in ``<autoencoder_workdir>/latent_scale.json`` (with the autoencoder's step,
so a retrained autoencoder gets a new estimate).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen.core.rng import per_example_keys
from jaxgen.errors import ConfigError

SCALE_FILE = "latent_scale.json"
_FIELD = "latent.autoencoder_workdir"
# The key of the scale-factor estimate's posterior samples.
_SCALE_SEED = 0x5CA1E


def enabled(config: ml_collections.ConfigDict) -> bool:
    """Whether the config asks for latent diffusion."""
    return bool(config.get("latent", {}).get("autoencoder_workdir", ""))


def validate_config(config: ml_collections.ConfigDict) -> None:
    """The ``latent`` section and what latent diffusion cannot be combined with. The
    autoencoder run itself is checked with the data (``check_autoencoder_run``)."""
    from jaxgen.train.validation import get_field, number, positive_int

    workdir = get_field(config, _FIELD)
    if not isinstance(workdir, str):
        raise ConfigError(_FIELD, workdir, "must be a path (str) to a trained autoencoder "
                          "run, or '' for diffusion in pixel space")
    scale = get_field(config, "latent.scale_factor")
    if scale is not None:
        number(config, "latent.scale_factor", 0.0, 1e6, lo_open=True)
    positive_int(config, "latent.scale_images")
    if not workdir:
        return
    if config.diffusion.get("condition", "none") != "none":
        raise ConfigError("diffusion.condition", config.diffusion.condition, "must be 'none' "
                          "with latent.autoencoder_workdir set (super-resolution runs in "
                          "pixel space)")
    if get_field(config, "eval.likelihood"):
        raise ConfigError("eval.likelihood", True, "must be False with latent diffusion (the "
                          "variational bound would be of the latents, not of the images)")
    clip = get_field(config, "sampler.clip_x0")
    if clip > 0:
        raise ConfigError("sampler.clip_x0", clip, "must be <= 0 (off) with latent "
                          "diffusion: it clips the x_0 estimate to [-c, c], a range made for "
                          "images in [-1, 1], while the scaled latents are unit-variance and "
                          "unbounded")


def autoencoder_run(config: ml_collections.ConfigDict):
    """(saved config, example shape) of the run in ``latent.autoencoder_workdir``;
    ConfigError when there is no trained autoencoder run there."""
    from jaxgen.train import checkpoint

    workdir = config.latent.autoencoder_workdir
    if not os.path.isdir(workdir):
        raise ConfigError(_FIELD, workdir, "must be the workdir of a trained "
                          "family='autoencoder' run; no such directory")
    try:
        saved = checkpoint.load_config(workdir)
        shape = tuple(int(d) for d in checkpoint.load_meta(workdir)["example_shape"])
    except (FileNotFoundError, KeyError, ValueError):
        raise ConfigError(_FIELD, workdir, "holds no jaxgen run (no readable config.json and "
                          "run.json); train one with configs/autoencoder_mnist.py") from None
    if saved.get("family") != "autoencoder":
        raise ConfigError(_FIELD, workdir, f"is a family={saved.get('family')!r} run; must be "
                          f"a family='autoencoder' run (configs/autoencoder_mnist.py)")
    steps = [d for d in os.listdir(checkpoint.checkpoint_dir(workdir)) if d.isdigit()] if \
        os.path.isdir(checkpoint.checkpoint_dir(workdir)) else []
    if not steps:
        raise ConfigError(_FIELD, workdir, "has no checkpoint yet (train the autoencoder "
                          "first)")
    return saved, shape


def check_autoencoder_run(config: ml_collections.ConfigDict, example_shape) -> tuple:
    """Checks the autoencoder run against the data; returns the latent shape
    (H/f, W/f, C) the denoiser works on."""
    saved, trained = autoencoder_run(config)
    shape = tuple(int(d) for d in example_shape)
    if shape != trained:
        raise ConfigError(_FIELD, config.latent.autoencoder_workdir, f"was trained on images "
                          f"of shape {trained}, but data.name={config.data.name!r} gives "
                          f"{shape}; use an autoencoder of this data")
    a = saved.autoencoder
    f = 2 ** (len(a.channels) - 1)
    latent = (trained[0] // f, trained[1] // f, int(a.latent_channels))
    if config.model.name == "unet":
        factor = 2 ** (len(config.model.block_channels) - 1)
        if latent[0] % factor or latent[1] % factor:
            raise ConfigError("model.block_channels", tuple(config.model.block_channels),
                              f"{len(config.model.block_channels)} levels downsample by "
                              f"{factor}, which must divide the latent size "
                              f"{latent[0]}x{latent[1]} of the autoencoder in "
                              f"{config.latent.autoencoder_workdir}")
    return latent


class LatentSpace:
    """The frozen autoencoder of a latent diffusion run: scaled encoding and decoding.

    Attributes:
      autoencoder: the ``AutoencoderFamily`` of the run.
      params: its EMA parameters (constants of the diffusion run's jitted functions).
      latent_shape: (H/f, W/f, C).
      scale_factor: the latents are multiplied by it before diffusion.
      step: the autoencoder's training step.
    """

    def __init__(self, config: ml_collections.ConfigDict):
        from jaxgen import api

        autoencoder_run(config)
        self.workdir = config.latent.autoencoder_workdir
        run = api.load(self.workdir)
        self.autoencoder = run.family
        self.params = run.state.ema_params
        self.step = run.step
        self.latent_shape = tuple(self.autoencoder.latent_shape)
        given = config.latent.scale_factor
        self.scale_factor = float(given) if given is not None else self._estimate(
            run.config, int(config.latent.scale_images))

    def _estimate(self, ae_config, num_images: int) -> float:
        """1 / std of the latents of the autoencoder's first training images, read from
        (or recorded in) ``SCALE_FILE`` in its workdir."""
        from jaxgen.train import autoencoder, checkpoint

        path = os.path.join(self.workdir, SCALE_FILE)
        try:
            with open(path) as f:
                record = json.load(f)
            if record.get("step") == self.step and record.get("num_images_asked") == num_images:
                return float(record["scale_factor"])
        except (OSError, ValueError, KeyError):
            pass
        images = autoencoder.first_images(ae_config.data, ae_config.data.split, num_images)
        stats = autoencoder.latent_statistics(self.autoencoder, self.params, images,
                                              jax.random.key(_SCALE_SEED))
        record = {"step": self.step, "num_images_asked": num_images, **stats,
                  "data": f"{ae_config.data.name} {ae_config.data.split}"}
        if jax.process_index() == 0:
            try:
                checkpoint.write_atomic(path, json.dumps(record, indent=2))
            except OSError:
                pass  # a read-only autoencoder run: the estimate is used unrecorded
        return float(stats["scale_factor"])

    def encode(self, x, rng, positions=None):
        """scale_factor * z with z ~ q(z|x) (B, *latent_shape); example i's noise comes
        from ``fold_in(rng, i)`` (or ``positions[i]``), never from the batch size."""
        mean, logvar = self.autoencoder.encode(self.params, x)
        keys = per_example_keys(rng, x.shape[0], positions=positions)
        eps = jax.vmap(lambda k: jax.random.normal(k, mean.shape[1:], mean.dtype))(keys)
        z = mean + jnp.exp(0.5 * logvar) * eps
        return jax.lax.stop_gradient(self.scale_factor * z)

    def decode(self, latents):
        """Scaled latents (B, *latent_shape) -> images in [-1, 1] (B, H, W, C)."""
        images = self.autoencoder.decode(self.params, latents / self.scale_factor)
        return jnp.clip(images, -1.0, 1.0)


__all__ = ["LatentSpace", "SCALE_FILE", "autoencoder_run", "check_autoencoder_run", "enabled",
           "validate_config"]
