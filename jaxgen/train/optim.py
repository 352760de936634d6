"""Optimizers built from the ``optim`` section of a config."""

from __future__ import annotations

import optax

OPTIMIZERS = ("adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine")


def learning_rate_schedule(cfg, num_steps: int) -> optax.Schedule:
    """Linear warm-up to ``cfg.learning_rate`` over ``cfg.warmup_steps``, then constant
    or cosine decay to ``cfg.final_lr_fraction * learning_rate`` at ``num_steps``."""
    peak, warmup = cfg.learning_rate, cfg.warmup_steps
    if cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, peak, warmup, max(num_steps, warmup + 1), end_value=peak * cfg.final_lr_fraction)
    if warmup == 0:
        return optax.constant_schedule(peak)
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup),
                                 optax.constant_schedule(peak)], [warmup])


def build_optimizer(cfg, num_steps: int) -> optax.GradientTransformation:
    """Global-norm clipping (if ``cfg.grad_clip > 0``) followed by Adam, AdamW or RMSProp.

    RMSProp (Tieleman & Hinton 2012; WGAN's Algorithm 1 uses it for both players) keeps
    no momentum: its one moving average of squared gradients decays with ``cfg.b2``, the
    role b2 plays in Adam, and ``cfg.b1`` is unused.
    """
    lr = learning_rate_schedule(cfg, num_steps)
    if cfg.name == "adam":
        opt = optax.adam(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    elif cfg.name == "adamw":
        opt = optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    elif cfg.name == "rmsprop":
        opt = optax.rmsprop(lr, decay=cfg.b2, eps=cfg.eps)
    else:
        raise ValueError(f"optim.name must be one of {OPTIMIZERS}, got {cfg.name!r}")
    if cfg.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)
    return opt
