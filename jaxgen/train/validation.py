"""Config validation, run before anything is compiled or written.

Every failure raises ``jaxgen.errors.ConfigError`` whose message is one line naming
the field, the value and what is allowed.
"""

from __future__ import annotations

import os
from typing import Iterable

import jax
import ml_collections

from jaxgen import diffusion, nets
from jaxgen.errors import ConfigError
from jaxgen.train import optim


def _get(config, field: str):
    node = config
    for part in field.split("."):
        if part not in node:
            raise ConfigError(field, None, "missing: every config must define it "
                              "(derive from configs/base.py)")
        node = node[part]
    return node


def _positive_int(config, field: str, minimum: int = 1) -> int:
    v = _get(config, field)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(field, v, f"must be an integer >= {minimum}")
    return v


def _number(config, field: str, lo: float, hi: float, lo_open=False, hi_open=False) -> float:
    v = _get(config, field)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if ok:
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ConfigError(field, v, f"must be a number in {left}{lo}, {hi}{right}")
    return v


def _choice(config, field: str, allowed: Iterable[str]) -> str:
    v = _get(config, field)
    allowed = tuple(allowed)
    if v not in allowed:
        raise ConfigError(field, v, f"must be one of {', '.join(map(repr, allowed))}")
    return v


def validate(config: ml_collections.ConfigDict, workdir: str | None = None) -> None:
    """Checks every field the run uses; raises ConfigError on the first bad one."""
    from jaxgen.train import FAMILIES
    _positive_int(config, "seed", minimum=0)
    _choice(config, "family", FAMILIES)

    name = _get(config, "data.name")
    if not isinstance(name, str) or not name:
        raise ConfigError("data.name", name, "must be a dataset name: 'digits' or a TFDS name")
    # Whether a TFDS name exists is checked when the source is opened (DataError).
    for field in ("data.split", "data.eval_split"):
        v = _get(config, field)
        if not isinstance(v, str) or not v:
            raise ConfigError(field, v, "must be a split string such as 'train' or 'test[:90%]'")
    d_dir = _get(config, "data.data_dir")
    if d_dir is not None and not os.path.isdir(d_dir):
        raise ConfigError("data.data_dir", d_dir, "must be an existing directory (or None "
                          "for the TFDS default)")

    _choice(config, "model.name", nets.MODELS)
    channels = _get(config, "model.block_channels")
    if (not isinstance(channels, (tuple, list)) or not channels
            or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels)):
        raise ConfigError("model.block_channels", channels,
                          "must be a non-empty tuple of positive integers")
    attention = _get(config, "model.attention")
    if not isinstance(attention, (tuple, list)) or len(attention) != len(channels):
        raise ConfigError("model.attention", attention,
                          f"must be a tuple of {len(channels)} booleans, one per level")
    _positive_int(config, "model.layers_per_block")
    groups = _positive_int(config, "model.num_groups")
    if any(c % groups for c in channels):
        raise ConfigError("model.num_groups", groups,
                          f"must divide every entry of model.block_channels={tuple(channels)}")
    head_dim = _positive_int(config, "model.head_dim")
    attn_channels = [c for c, a in zip(channels, attention) if a]
    if _get(config, "model.mid_attention"):
        attn_channels.append(channels[-1])
    if any(c % head_dim for c in attn_channels):
        raise ConfigError("model.head_dim", head_dim,
                          f"must divide the channels of every attention level {attn_channels}")
    _choice(config, "model.time_conditioning", nets.TIME_CONDITIONING)
    _number(config, "model.dropout", 0.0, 1.0, hi_open=True)

    _choice(config, "diffusion.process", ("ddpm",))
    _choice(config, "diffusion.schedule", diffusion.SCHEDULES)
    _positive_int(config, "diffusion.num_timesteps")
    lo = _number(config, "diffusion.beta_start", 0.0, 1.0, lo_open=True, hi_open=True)
    _number(config, "diffusion.beta_end", lo, 1.0, hi_open=True)
    _choice(config, "diffusion.prediction", diffusion.PREDICTIONS)

    _choice(config, "sampler.method", diffusion.METHODS)
    _choice(config, "sampler.variance", ("beta", "beta_tilde"))
    _positive_int(config, "sampler.num_samples")

    _choice(config, "optim.name", optim.OPTIMIZERS)
    _choice(config, "optim.schedule", optim.SCHEDULES)
    _number(config, "optim.learning_rate", 0.0, 10.0, lo_open=True)
    _positive_int(config, "optim.warmup_steps", minimum=0)
    _number(config, "optim.final_lr_fraction", 0.0, 1.0)
    _number(config, "optim.ema_decay", 0.0, 1.0, hi_open=True)
    _number(config, "optim.grad_clip", -1e30, 1e30)

    _positive_int(config, "train.num_steps")
    batch = _positive_int(config, "train.batch_size")
    devices = jax.device_count()
    if batch % devices:
        raise ConfigError("train.batch_size", batch,
                          f"must be divisible by the number of devices ({devices})")
    _positive_int(config, "train.log_every")
    _positive_int(config, "train.checkpoint_every")
    _positive_int(config, "train.sample_every", minimum=0)
    _positive_int(config, "train.keep_checkpoints")
    _positive_int(config, "train.eval_batches")

    if workdir is not None:
        check_workdir(workdir)


def check_workdir(workdir: str) -> None:
    """The workdir must be creatable and writable; nothing is created here."""
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError("workdir", workdir, "must be a directory, but a file is there")
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError("workdir", workdir, f"must be writable ({probe} is not)")


def check_data_fits(config: ml_collections.ConfigDict, example_shape) -> None:
    """The data's shape must suit the model: image size divisible by the UNet's downsampling."""
    if config.model.name == "unet":
        if len(example_shape) != 3:
            raise ConfigError("data.name", config.data.name,
                              f"gives examples of shape {tuple(example_shape)}; the UNet "
                              "needs images (H, W, C)")
        factor = 2 ** (len(config.model.block_channels) - 1)
        h, w = example_shape[:2]
        if h % factor or w % factor:
            raise ConfigError("model.block_channels", tuple(config.model.block_channels),
                              f"{len(config.model.block_channels)} levels downsample by "
                              f"{factor}, which must divide the image size {h}x{w}")
