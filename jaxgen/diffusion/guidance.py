"""Classifier-free guidance and image editing (SDEdit, inpainting) on top of any sampler."""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.core import checks
from jaxgen.core.rng import per_example_keys
from jaxgen.diffusion import samplers, schedules


def drop_labels(rng: chex.PRNGKey, labels: chex.Array, p: float, null_label: int,
                positions=None) -> chex.Array:
    """Replaces each label by ``null_label`` with probability ``p`` (Ho & Salimans 2022,
    Algorithm 1; the lectures: ``if random() < 0.5: y = y_null``). Example i uses
    fold_in(rng, i) (or fold_in(rng, positions[i])), so the choice does not depend on the
    batch size or on how the batch is split into micro-batches."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"label dropout probability must be in [0, 1], got {p}")
    keys = per_example_keys(rng, labels.shape[0], positions=positions)
    drop = jax.vmap(lambda k: jax.random.bernoulli(k, p))(keys)
    return jnp.where(drop, jnp.asarray(null_label, labels.dtype), labels)


def classifier_free_guidance(model_fn: Callable, labels: chex.Array, weight, null_label: int
                             ) -> Callable:
    """Guided model: (1 + w) f(x, t, y) - w f(x, t, y_null) (Ho & Salimans 2022, Eq. 6;
    the lectures' ``v = (1 + w) * vy - w * v0``).

    The combination is affine with weights summing to one, so guiding any target
    (eps, x0, v, velocity, score) gives the same sampler as guiding eps. Both branches
    run as one call on a doubled batch.

    Args:
      model_fn: (x_t (B, ...), t (B,), labels (B,)) -> prediction.
      labels: (B,) int class labels.
      weight: guidance weight w (scalar, or (B,) per example; w = 0 is the conditional
        model, w = -1 the unconditional one).
      null_label: the label used for "no condition" in training.

    Returns:
      model_fn(x_t, t) for the samplers.
    """
    labels = jnp.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (B,), got {labels.shape}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    if jnp.ndim(weight) not in (0, 1) or (jnp.ndim(weight) == 1
                                          and jnp.shape(weight) != labels.shape):
        raise ValueError(f"guidance weight must be a scalar or have the shape of labels "
                         f"{labels.shape}, got shape {jnp.shape(weight)}")
    null = jnp.full_like(labels, null_label)

    def guided(x, t):
        if x.shape[0] != labels.shape[0]:
            raise ValueError(f"batch of x_t ({x.shape[0]}) and labels ({labels.shape[0]}) "
                             f"differ")
        out = model_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                       jnp.concatenate([labels, null]))
        cond, uncond = jnp.split(out, 2)
        w = schedules._expand(jnp.asarray(weight, x.dtype), x) if jnp.ndim(weight) else weight
        return (1.0 + w) * cond - w * uncond

    return guided


def sdedit(model_fn: Callable, process, x_input: chex.Array, rng: chex.PRNGKey, *,
           t_start, method: str = "ddim", num_steps=None, **kwargs):
    """SDEdit (Meng et al. 2022): noise a guide image to level ``t_start`` with q(x_t|x_0),
    then run the sampler from there. Small t_start keeps the input; t_start = t_max
    ignores it.

    Args:
      x_input: (B, ...) the guide image (e.g. a stroke painting), in data space.
      t_start: the start time/index (an int index for a discrete process).
      method, num_steps, kwargs: as for ``samplers.sample``; ``num_steps`` levels span
        [t_start, t_clean].
    """
    checks.check_float_array("x_input", x_input)
    checks.check_batched("x_input", x_input)
    if checks.concrete(t_start) is None or jnp.ndim(t_start) != 0:
        raise ValueError(f"t_start must be a Python or NumPy scalar (it fixes the sampling "
                         f"grid at trace time), got {type(t_start).__name__}")
    if getattr(process, "discrete", False):
        checks.check_int("t_start", t_start, 0, process.num_timesteps - 1)
    else:
        checks.check_range("t_start", t_start, process._t_lo(), process.t_max, lo_open=True)
    k_noise, k_sample = jax.random.split(rng)
    t = jnp.full((x_input.shape[0],), t_start,
                 jnp.int32 if getattr(process, "discrete", False) else jnp.float32)
    x_t = schedules.q_sample(process, x_input, t, samplers.initial_noise(
        k_noise, x_input.shape, x_input.dtype))
    if num_steps is None and getattr(process, "discrete", False):
        num_steps = int(np.asarray(t_start)) + 1
    return samplers.sample(model_fn, process, x_t, k_sample, method=method,
                           num_steps=num_steps, t_start=t_start, **kwargs)


def inpaint(model_fn: Callable, process, x_known: chex.Array, mask: chex.Array,
            rng: chex.PRNGKey, *, method: str = "ddpm", **kwargs):
    """Inpainting by replacement (Song et al. 2021, App. I.2; the lectures' editing):
    sample from the prior, and after every step overwrite the known pixels (mask = 1)
    with the known image noised to the current level. Returns (B, ...).

    Args:
      x_known: (B, ...) float image whose known pixels are kept.
      mask: 1 where x_known is kept, 0 where it is generated; broadcastable to x_known.
    """
    checks.check_float_array("inpaint image x_known", x_known)
    checks.check_batched("inpaint image x_known", x_known)
    k_init, k_sample = jax.random.split(rng)
    x_T = samplers.prior_noise(process, k_init, x_known.shape, x_known.dtype)
    return samplers.sample(model_fn, process, x_T, k_sample, method=method,
                           inpaint=(x_known, mask), **kwargs)
