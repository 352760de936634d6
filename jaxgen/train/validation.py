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
from jaxgen.train.state import ON_NONFINITE


def get_field(config, field: str):
    node = config
    for part in field.split("."):
        if part not in node:
            raise ConfigError(field, None, "missing: every config must define it "
                              "(derive from configs/base.py)")
        node = node[part]
    return node


def positive_int(config, field: str, minimum: int = 1) -> int:
    v = get_field(config, field)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(field, v, f"must be an integer >= {minimum}")
    return v


def number(config, field: str, lo: float, hi: float, lo_open=False, hi_open=False) -> float:
    v = get_field(config, field)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if ok:
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ConfigError(field, v, f"must be a number in {left}{lo}, {hi}{right}")
    return v


def choice(config, field: str, allowed: Iterable[str]) -> str:
    v = get_field(config, field)
    allowed = tuple(allowed)
    if v not in allowed:
        raise ConfigError(field, v, f"must be one of {', '.join(map(repr, allowed))}")
    return v


def validate(config: ml_collections.ConfigDict, workdir: str | None = None) -> None:
    """Checks every field the run uses; raises ConfigError on the first bad one."""
    from jaxgen.train import FAMILIES, get_family
    positive_int(config, "seed", minimum=0)
    family = get_family(choice(config, "family", FAMILIES))

    name = get_field(config, "data.name")
    if not isinstance(name, str) or not name:
        raise ConfigError("data.name", name, "must be a dataset name: 'digits', 'toy:NAME' or "
                          "a TFDS name")
    # Whether a TFDS name exists is checked when the source is opened (DataError).
    for field in ("data.split", "data.eval_split"):
        v = get_field(config, field)
        if not isinstance(v, str) or not v:
            raise ConfigError(field, v, "must be a split string such as 'train' or 'test[:90%]'")
    d_dir = get_field(config, "data.data_dir")
    if d_dir is not None and not os.path.isdir(d_dir):
        raise ConfigError("data.data_dir", d_dir, "must be an existing directory (or None "
                          "for the TFDS default)")

    family.validate_config(config)

    choice(config, "optim.name", optim.OPTIMIZERS)
    choice(config, "optim.schedule", optim.SCHEDULES)
    number(config, "optim.learning_rate", 0.0, 10.0, lo_open=True)
    positive_int(config, "optim.warmup_steps", minimum=0)
    number(config, "optim.final_lr_fraction", 0.0, 1.0)
    number(config, "optim.ema_decay", 0.0, 1.0, hi_open=True)
    number(config, "optim.grad_clip", -1e30, 1e30)

    positive_int(config, "train.num_steps")
    batch = positive_int(config, "train.batch_size")
    devices = jax.device_count()
    if batch % devices:
        raise ConfigError("train.batch_size", batch,
                          f"must be divisible by the number of devices ({devices})")
    choice(config, "train.compute_dtype", ("float32", "bfloat16"))
    accum = positive_int(config, "train.grad_accum_steps")
    if batch % (accum * devices):
        raise ConfigError("train.grad_accum_steps", accum, f"times the number of devices "
                          f"({devices}) must divide train.batch_size ({batch})")
    if config.family != "diffusion" and (config.train.compute_dtype != "float32" or accum > 1):
        raise ConfigError("train.compute_dtype" if accum == 1 else "train.grad_accum_steps",
                          config.train.compute_dtype if accum == 1 else accum,
                          f"must be the default for family {config.family!r} (mixed precision "
                          f"and gradient accumulation are built for 'diffusion' so far)")
    fsdp = positive_int(config, "train.fsdp")
    if devices % fsdp:
        raise ConfigError("train.fsdp", fsdp, f"must divide the number of devices ({devices})")
    positive_int(config, "train.log_every")
    positive_int(config, "train.checkpoint_every")
    positive_int(config, "train.sample_every", minimum=0)
    positive_int(config, "train.keep_checkpoints")
    positive_int(config, "train.eval_batches")
    choice(config, "train.on_nonfinite", ON_NONFINITE)
    _validate_eval(config)

    if workdir is not None:
        check_workdir(workdir)


def _validate_eval(config) -> None:
    positive_int(config, "eval.num_samples", minimum=0)
    positive_int(config, "eval.batch_size")
    positive_int(config, "eval.every", minimum=0)
    path = get_field(config, "eval.feature_net")
    if path and not os.path.isfile(path):
        raise ConfigError("eval.feature_net", path, "must be a feature extractor file (train "
                          "one with experiments/train_classifier.py), the InceptionV3 .npz "
                          "weights, or '' for none")


def validate_diffusion_config(config) -> None:
    """The sections of the diffusion family: ``model`` (its backbones), ``diffusion`` and
    ``sampler``."""
    _validate_model(config)
    _validate_diffusion(config)


def _validate_model(config) -> None:
    model = choice(config, "model.name", nets.MODELS)
    if model in ("unet", "dit"):
        _validate_unet(config) if model == "unet" else _validate_dit(config)
        if not isinstance(get_field(config, "model.remat"), bool):
            raise ConfigError("model.remat", config.model.remat, "must be True or False")
    else:
        width = positive_int(config, "model.hidden_dim", minimum=2)
        if width % 2:
            raise ConfigError("model.hidden_dim", width, "must be even (it is the width of "
                              "the sinusoidal time embedding)")
        positive_int(config, "model.num_layers")
    number(config, "model.dropout", 0.0, 1.0, hi_open=True)
    positive_int(config, "model.num_classes", minimum=0)


def _validate_dit(config) -> None:
    positive_int(config, "model.patch_size")
    number(config, "model.mlp_ratio", 0.0, 1e3, lo_open=True)
    if choice(config, "model.dit_size", ("",) + tuple(nets.DIT_SIZES)):
        return  # the size sets depth, hidden_size and num_heads (Peebles & Xie, Table 1)
    positive_int(config, "model.depth")
    heads = positive_int(config, "model.num_heads")
    width = positive_int(config, "model.hidden_size")
    if width % 4 or width % heads:
        raise ConfigError("model.hidden_size", width, f"must be divisible by 4 (2-D sin-cos "
                          f"position embeddings) and by model.num_heads ({heads})")


def _validate_unet(config) -> None:
    channels = get_field(config, "model.block_channels")
    if (not isinstance(channels, (tuple, list)) or not channels
            or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels)):
        raise ConfigError("model.block_channels", channels,
                          "must be a non-empty tuple of positive integers")
    attention = get_field(config, "model.attention")
    if not isinstance(attention, (tuple, list)) or len(attention) != len(channels):
        raise ConfigError("model.attention", attention,
                          f"must be a tuple of {len(channels)} booleans, one per level")
    positive_int(config, "model.layers_per_block")
    groups = positive_int(config, "model.num_groups")
    if any(c % groups for c in channels):
        raise ConfigError("model.num_groups", groups,
                          f"must divide every entry of model.block_channels={tuple(channels)}")
    head_dim = positive_int(config, "model.head_dim")
    attn_channels = [c for c, a in zip(channels, attention) if a]
    if get_field(config, "model.mid_attention"):
        attn_channels.append(channels[-1])
    if any(c % head_dim for c in attn_channels):
        raise ConfigError("model.head_dim", head_dim,
                          f"must divide the channels of every attention level {attn_channels}")
    choice(config, "model.time_conditioning", nets.TIME_CONDITIONING)


def optional_number(config, field: str, lo: float, lo_open=True):
    v = get_field(config, field)
    if v is None:
        return None
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (v > lo if lo_open
                                                                       else v >= lo)
    if not ok:
        raise ConfigError(field, v, f"must be None (the process's default) or a number "
                          f"{'>' if lo_open else '>='} {lo}")
    return v


def _alpha_at_t_max(process) -> float:
    with jax.ensure_compile_time_eval():
        return float(process.alpha(process.t_max))


def _validate_diffusion(config) -> None:
    """The process, the loss (target, weighting, training times, preconditioning, label
    dropout) and the sampler, including the combinations that cannot work."""
    from jaxgen.train.diffusion import PRECONDITIONS, make_process

    name = choice(config, "diffusion.process", diffusion.PROCESSES)
    if name == "ddpm":
        choice(config, "diffusion.schedule", diffusion.SCHEDULES)
        positive_int(config, "diffusion.num_timesteps")
        lo = number(config, "diffusion.beta_start", 0.0, 1.0, lo_open=True, hi_open=True)
        number(config, "diffusion.beta_end", lo, 1.0, hi_open=True)
    elif name == "vp":
        lo = number(config, "diffusion.beta_min", 0.0, 1e6, lo_open=True)
        hi = number(config, "diffusion.beta_max", 0.0, 1e6, lo_open=True)
        if hi <= lo:
            raise ConfigError("diffusion.beta_max", hi, f"must be greater than "
                              f"diffusion.beta_min ({lo})")
    elif name in ("ve", "edm"):
        optional_number(config, "diffusion.sigma_min", 0.0)
        optional_number(config, "diffusion.sigma_max", 0.0)
    process = make_process(config.diffusion)
    if name in ("ve", "edm") and process.sigma_max <= process.sigma_min:
        raise ConfigError("diffusion.sigma_max", config.diffusion.sigma_max, f"must be greater "
                          f"than diffusion.sigma_min ({process.sigma_min})")
    discrete = bool(process.discrete)
    continuous_only = (f"needs a continuous-time process (diffusion.process one of "
                       f"{', '.join(repr(p) for p in diffusion.PROCESSES if p != 'ddpm')}), "
                       f"not 'ddpm'")

    prediction = choice(config, "diffusion.prediction", diffusion.PREDICTIONS)
    if prediction == "velocity" and discrete:
        raise ConfigError("diffusion.prediction", prediction, continuous_only)
    weighting = choice(config, "diffusion.weighting", diffusion.WEIGHTINGS)
    if weighting == "min_snr":
        number(config, "diffusion.min_snr_gamma", 0.0, 1e6, lo_open=True)
    number(config, "diffusion.sigma_data", 0.0, 1e6, lo_open=True)
    sampler = choice(config, "diffusion.time_sampler", diffusion.TIME_SAMPLERS)
    if sampler == "log_normal" and discrete:
        raise ConfigError("diffusion.time_sampler", sampler, continuous_only)
    number(config, "diffusion.time_mean", -1e6, 1e6)
    number(config, "diffusion.time_std", 0.0, 1e6, lo_open=True)
    shift = number(config, "diffusion.time_shift", 0.0, 1e6, lo_open=True)
    if sampler == "log_normal" and shift != 1:
        raise ConfigError("diffusion.time_shift", shift, "must be 1 with diffusion."
                          "time_sampler='log_normal' (the shift acts on 'uniform' and "
                          "'logit_normal' times)")
    likelihood = get_field(config, "eval.likelihood")
    if not isinstance(likelihood, bool):
        raise ConfigError("eval.likelihood", likelihood, "must be True or False")
    if likelihood and not discrete:
        raise ConfigError("eval.likelihood", likelihood, f"needs diffusion.process='ddpm' "
                          f"(the variational bound is of a discrete DDPM); "
                          f"diffusion.process={name!r} has none here")
    precondition = choice(config, "diffusion.precondition", PRECONDITIONS)
    if precondition == "edm":
        if prediction != "x0":
            raise ConfigError("diffusion.prediction", prediction, "must be 'x0' with "
                              "diffusion.precondition='edm' (the preconditioned network is a "
                              "denoiser D(x; sigma))")
        if _alpha_at_t_max(process) <= 0:
            raise ConfigError("diffusion.precondition", precondition, f"needs alpha(t) > 0 "
                              f"everywhere, but diffusion.process={name!r} reaches alpha = 0")
    dropout = number(config, "diffusion.label_dropout", 0.0, 1.0, hi_open=True)
    if dropout > 0 and not get_field(config, "model.num_classes"):
        raise ConfigError("diffusion.label_dropout", dropout, "needs a class-conditional "
                          "model (model.num_classes > 0); use 0")
    _validate_sampler(config, process, discrete, dropout)


def _validate_sampler(config, process, discrete: bool, label_dropout: float) -> None:
    method = choice(config, "sampler.method", diffusion.METHODS)
    if method in ("euler_maruyama", "pc") and _alpha_at_t_max(process) <= 0:
        raise ConfigError("sampler.method", method, f"needs alpha(t_max) > 0 (the reverse "
                          f"SDE's drift is singular at alpha = 0); with diffusion.process="
                          f"{config.diffusion.process!r} use 'euler', 'heun', 'ddim' or "
                          f"'dpm_solver++'")
    choice(config, "sampler.variance", ("beta", "beta_tilde"))
    number(config, "sampler.clip_x0", -1e30, 1e30)
    positive_int(config, "sampler.num_samples")
    steps = positive_int(config, "sampler.num_steps", minimum=0)
    if discrete and steps > process.num_timesteps:
        raise ConfigError("sampler.num_steps", steps, f"must be in [0, "
                          f"{process.num_timesteps}] (0: all diffusion.num_timesteps steps)")
    if not discrete and steps == 0:
        raise ConfigError("sampler.num_steps", steps, "must be >= 1 for a continuous-time "
                          "process (0, all steps, exists only for 'ddpm')")
    spacings = diffusion.SPACINGS if discrete else ("linspace", "karras", "logsnr")
    spacing = choice(config, "sampler.spacing", ("",) + tuple(spacings))
    try:
        process.timesteps(steps or process.num_timesteps, spacing or None)
    except ValueError as e:  # e.g. 'karras' asked for more distinct steps than T has
        raise ConfigError("sampler.spacing", spacing, str(e).splitlines()[0]) from None
    eta = number(config, "sampler.eta", 0.0, 1.0)
    if eta and method != "ddim":
        raise ConfigError("sampler.eta", eta, "is only used by sampler.method='ddim'; "
                          "must be 0")
    w = number(config, "sampler.guidance_weight", -1.0, 1e3)
    if w != 0 and not label_dropout > 0:
        raise ConfigError("sampler.guidance_weight", w, "needs diffusion.label_dropout > 0 "
                          "(classifier-free guidance needs a model trained with null "
                          "labels); must be 0")
    number(config, "sampler.snr", 0.0, 1e3, lo_open=True)
    positive_int(config, "sampler.corrector_steps", minimum=0)


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


def trained_example_shape(workdir: str | None):
    """The example shape a run in ``workdir`` was trained on (from its saved metadata),
    or None when the workdir holds no run yet."""
    if workdir is None:
        return None
    from jaxgen.train import checkpoint  # lazy: pulls in orbax
    try:
        shape = checkpoint.load_meta(workdir).get("example_shape")
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None  # no run there, or metadata that cannot be read: nothing to compare
    return tuple(int(d) for d in shape) if shape is not None else None


def check_data_fits(config: ml_collections.ConfigDict, example_shape,
                    num_classes: int | None = None, trained_shape=None) -> None:
    """The data must suit the model: labels for a class-conditional model, for a run that
    already exists the shape it was trained on, and what the family's model needs
    (``check_data`` of the family, e.g. images whose size the UNet's downsampling
    divides).

    The config has no channel count: the network's input and output channels come from
    the data. So a channel mismatch (grayscale data for a run trained on RGB) is caught
    here, against ``trained_shape``, before the checkpoint's weights meet the data.

    Args:
      example_shape: shape of one example (``Pipeline.element_shape``).
      num_classes: the data's number of classes (0: no labels; None: not checked).
      trained_shape: the example shape the run being resumed, sampled or evaluated was
        trained on (``trained_example_shape(workdir)``); None: a new run.
    """
    example_shape = tuple(int(d) for d in example_shape)
    if trained_shape is not None and tuple(trained_shape) != example_shape:
        trained_shape = tuple(trained_shape)
        what = f"examples of shape {example_shape}"
        if (len(example_shape) == len(trained_shape) == 3
                and example_shape[:2] == trained_shape[:2]):
            what = (f"{example_shape[2]}-channel images {example_shape}, but the run in the "
                    f"workdir was trained on {trained_shape[2]}-channel images "
                    f"{trained_shape}")
        else:
            what += f", but the run in the workdir was trained on {trained_shape}"
        raise ConfigError("data.name", config.data.name, f"gives {what}; use data of the "
                          f"trained shape, or a new workdir")
    if num_classes is not None:
        want = config.model.num_classes
        if want and not num_classes:
            raise ConfigError("model.num_classes", want, f"must be 0: data.name="
                              f"{config.data.name!r} has no labels")
        if want and want != num_classes:
            raise ConfigError("model.num_classes", want, f"must be 0 or {num_classes}, the "
                              f"number of classes of data.name={config.data.name!r}")
    from jaxgen.train import get_family
    get_family(config.family).check_data(config, example_shape)


def check_diffusion_data(config: ml_collections.ConfigDict, example_shape) -> None:
    """Images (H, W, C) with a size the UNet's downsampling divides, or points (D,) for
    the MLP."""
    if config.model.name == "mlp" and len(example_shape) != 1:
        raise ConfigError("model.name", "mlp", f"needs points (D,), but data.name="
                          f"{config.data.name!r} gives examples of shape "
                          f"{tuple(example_shape)}; use 'unet'")
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
    if config.model.name == "dit":
        p = config.model.patch_size
        if len(example_shape) != 3 or example_shape[0] % p or example_shape[1] % p:
            raise ConfigError("model.patch_size", p, f"must divide the image sides, but "
                              f"data.name={config.data.name!r} gives examples of shape "
                              f"{tuple(example_shape)} (the DiT needs images (H, W, C))")
