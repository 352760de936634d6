"""Training glue for few-step distillation of a diffusion teacher into a Flax student.

``progressive_distillation`` runs Salimans & Ho (2022, "Progressive Distillation for Fast
Sampling of Diffusion Models") Algorithm 2: round k trains a student to take N_k / 2
DDIM steps where the teacher takes N_k, then the student becomes the teacher and a
fresh student starts from its parameters. ``consistency_distillation`` runs Song et al.
(2023, "Consistency Models") Algorithm 2: an online consistency function regressed on
its EMA target network across one teacher ODE step. The math is in
``jaxgen.diffusion.distill``; this module owns the optimizer, the jitted step and the
randomness (step key = fold_in(base key, step), as in ``train/loop.py``).

The teacher is ``teacher_fn(teacher_params, x_t, t) -> prediction``, with the parameters
passed as a jitted argument (not baked into the program as constants), so a trained
network and an exact analytic denoiser (``teacher_params=None``) plug in alike. The
student is a Flax module called as ``module.apply({'params': p}, x_t, time_features(t))``
(``jaxgen.nets.MLP`` for points, ``jaxgen.nets.UNet`` for images).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen.diffusion import EDMProcess, distill, samplers
from jaxgen.train.diffusion import TIME_FEATURE_SCALE
from jaxgen.train.state import TrainState, ema_update

#: Streams folded into the base key, so the two parts of a run never share randomness.
_INIT_STREAM, _STEP_STREAM = 0x1A17, 0x57E9


def time_features(process) -> Callable:
    """What the students see for time t, as ``train/diffusion.py`` feeds its backbones:
    the integer step of a discrete process, 1000 t for a continuous one (EDM: 250 log t)."""
    if getattr(process, "discrete", False):
        return lambda t: t
    if isinstance(process, EDMProcess):
        return lambda t: (TIME_FEATURE_SCALE / 4.0) * jnp.log(t)
    return lambda t: TIME_FEATURE_SCALE * t


def module_fn(module: nn.Module, features: Callable) -> Callable:
    """``(params, x_t, t) -> module output``: a Flax module as a teacher/student function."""
    return lambda params, x, t: module.apply({"params": params}, x, features(t))


@dataclasses.dataclass
class Round:
    """One finished round of progressive distillation.

    Attributes:
      num_steps: the student's number of sampling steps (N).
      timesteps: the student's grid, N levels then t_clean.
      params: the student's parameters (its EMA if ``ema_decay`` > 0).
      losses: (steps,) training losses.
      seconds: wall time of the round, compile included.
    """
    num_steps: int
    timesteps: np.ndarray
    params: Any
    losses: np.ndarray
    seconds: float


def _init_params(module, process, rng, example_x, features):
    t = jnp.full((example_x.shape[0],), process.t_max,
                 jnp.int32 if getattr(process, "discrete", False) else jnp.float32)
    return module.init(rng, example_x, features(t))["params"]


def _check_common(batch_size, steps, rounds=1):
    for name, v in (("batch_size", batch_size), ("steps", steps), ("rounds", rounds)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def _train(loss_fn, state, tx, data_fn, rng, steps, ema_decay, *, extra_args=(),
           fixed_ema=False, log_every=0, tag=""):
    """Runs ``steps`` jitted optimizer steps on the mean of ``loss_fn(params, ema, *extra,
    x0, key)``; step i uses x0 = data_fn(i) and key = fold_in(rng, i)."""

    @jax.jit
    def step(state, x0, key, *extra):
        loss, grads = jax.value_and_grad(
            lambda p: jnp.mean(loss_fn(p, state.ema_params, *extra, x0, key)))(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if fixed_ema:  # Song et al.'s target network: theta- <- mu theta- + (1 - mu) theta
            ema = optax.incremental_update(params, state.ema_params, 1.0 - ema_decay)
        else:
            ema = ema_update(state.ema_params, params, state.step, ema_decay)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                             ema_params=ema), loss

    losses = []
    for i in range(steps):
        key = jax.random.fold_in(rng, i)
        state, loss = step(state, data_fn(i), key, *extra_args)
        losses.append(loss)
        if log_every and (i + 1) % log_every == 0:
            print(f"{tag} step {i + 1}/{steps} loss {float(loss):.5f}", flush=True)
    return state, np.asarray(jax.device_get(jnp.stack(losses)))


def progressive_distillation(teacher_fn: Callable, teacher_params, student: nn.Module, process,
                             data_fn: Callable, rng, *, teacher_steps: int, rounds: int,
                             steps_per_round: int, batch_size: int,
                             student_prediction: str = "v", teacher_prediction: str = "v",
                             weighting: str = "truncated_snr", spacing: Optional[str] = None,
                             optimizer: Optional[optax.GradientTransformation] = None,
                             student_params=None, ema_decay: float = 0.0,
                             features: Optional[Callable] = None, log_every: int = 0,
                             on_round: Optional[Callable] = None) -> list:
    """Progressive distillation: ``rounds`` halvings of ``teacher_steps`` DDIM steps.

    Round k: the teacher (round 0: ``teacher_fn``; later: the previous student) runs
    2N steps on its grid; the student, initialised from the teacher's parameters
    (round 0: ``student_params``, else a fresh init), learns to take N on the halved grid
    (``distill.halve_grid``) with a fresh optimizer state (Salimans & Ho 2022, Alg. 2).

    Args:
      teacher_fn: ``(teacher_params, x_t, t) -> prediction`` of ``teacher_prediction``.
      teacher_params: its parameters (None for an analytic teacher).
      student: the student Flax module; it predicts ``student_prediction``.
      process: the diffusion process of the teacher.
      data_fn: ``step -> x0 (batch_size, ...)``, a pure function of the step.
      rng: base PRNG key.
      teacher_steps: the first teacher's number of steps, divisible by 2^rounds.
      rounds: number of halvings.
      steps_per_round: optimizer steps per round, an int or one int per round (a first
        student trained from scratch against an analytic teacher needs more).
      batch_size: examples per step (checked against ``data_fn``'s output).
      weighting: ``distill.PD_WEIGHTINGS``.
      spacing: grid spacing of the first teacher grid (``process.timesteps``).
      optimizer: optax transformation (default Adam 1e-3); re-initialised every round.
      student_params: initial student parameters of round 0 (default: fresh init).
      ema_decay: EMA of the student (``TrainState.apply_gradients``'s warm-up rule); the
        EMA is what becomes the next teacher. 0 keeps the raw parameters.
      features: time features of the student (default ``time_features(process)``).
      log_every: print the loss every so many steps (0: never).
      on_round: called as ``on_round(Round)`` after each round.

    Returns:
      list of ``Round``, one per halving.
    """
    per_round = (list(steps_per_round) if isinstance(steps_per_round, (list, tuple))
                 else [steps_per_round] * rounds)
    if len(per_round) != rounds:
        raise ValueError(f"steps_per_round must be an int or {rounds} ints, got "
                         f"{steps_per_round!r}")
    for s in per_round:
        _check_common(batch_size, s, rounds)
    features = features or time_features(process)
    tx = optimizer or optax.adam(1e-3)
    grid = np.asarray(process.timesteps(teacher_steps, spacing))
    if (grid.shape[0] - 1) % (2 ** rounds):
        raise ValueError(f"teacher_steps = {teacher_steps} cannot be halved {rounds} times")
    x_example = jnp.asarray(data_fn(0))
    if x_example.shape[0] != batch_size:
        raise ValueError(f"data_fn returned a batch of {x_example.shape[0]}, expected "
                         f"batch_size = {batch_size}")
    student_apply = module_fn(student, features)
    params = student_params
    if params is None:
        params = _init_params(student, process, jax.random.fold_in(rng, _INIT_STREAM),
                              x_example[:1], features)
    t_fn, t_params, t_pred = teacher_fn, teacher_params, teacher_prediction
    out = []
    for k in range(rounds):
        start = time.time()
        teacher_grid, grid = grid, distill.halve_grid(grid)

        def loss_fn(p, _ema, tp, x0, key, t_fn=t_fn, t_pred=t_pred, teacher_grid=teacher_grid):
            return distill.progressive_distillation_loss(
                lambda x, t: student_apply(p, x, t), lambda x, t: t_fn(tp, x, t), process,
                x0, key, timesteps=teacher_grid, student_prediction=student_prediction,
                teacher_prediction=t_pred, weighting=weighting)

        state = TrainState.create(params, tx)
        key = jax.random.fold_in(jax.random.fold_in(rng, _STEP_STREAM), k)
        state, losses = _train(loss_fn, state, tx, data_fn, key, per_round[k], ema_decay,
                               extra_args=(t_params,), log_every=log_every,
                               tag=f"[PD {len(teacher_grid) - 1}->{len(grid) - 1}]")
        params = state.ema_params if ema_decay > 0 else state.params
        r = Round(len(grid) - 1, grid, params, losses, time.time() - start)
        out.append(r)
        if on_round is not None:
            on_round(r)
        t_fn, t_params, t_pred = student_apply, params, student_prediction
    return out


def ddim_student_sample(student: nn.Module, params, process, x_T, timesteps, *,
                        prediction: str = "v", features: Optional[Callable] = None):
    """Samples a progressive-distillation student: deterministic DDIM on its grid."""
    apply = module_fn(student, features or time_features(process))
    return samplers.ddim_sample(lambda x, t: apply(params, x, t), process, x_T, None,
                                prediction=prediction, timesteps=timesteps)


def consistency_model_fn(student: nn.Module, process, *, t_min: float, sigma_data: float,
                         features: Optional[Callable] = None) -> Callable:
    """``(params, x_t, t) -> f(x_t, t)``: the student as a consistency function."""
    apply = module_fn(student, features or time_features(process))
    return lambda p, x, t: distill.consistency_fn(
        lambda x, t: apply(p, x, t), process, t_min=t_min, sigma_data=sigma_data)(x, t)


def consistency_distillation(teacher_fn: Callable, teacher_params, student: nn.Module, process,
                             data_fn: Callable, rng, *, num_points: int, steps: int,
                             batch_size: int, teacher_prediction: str = "v",
                             solver: str = "heun", ema_decay: float = 0.95,
                             sigma_data: float = 0.5, t_min: Optional[float] = None,
                             spacing: Optional[str] = None, timesteps=None,
                             optimizer: Optional[optax.GradientTransformation] = None,
                             student_params=None, features: Optional[Callable] = None,
                             log_every: int = 0):
    """Consistency distillation (Song et al. 2023, Algorithm 2).

    Args:
      teacher_fn, teacher_params, student, process, data_fn, rng, batch_size, optimizer,
        features, log_every: as in ``progressive_distillation``.
      num_points: N of the grid (``distill.consistency_grid``); Song et al. use 18 on
        CIFAR-10.
      steps: optimizer steps.
      teacher_prediction: what the teacher predicts.
      solver: the teacher's ODE step ('heun' as in the paper, or 'ddim').
      ema_decay: mu of the target network theta- (fixed, no warm-up; 0.95 in the paper).
      sigma_data: data std of the parameterisation.
      t_min: boundary time (default ``process.t_eps``); spacing: grid spacing.
      timesteps: an explicit increasing grid instead of ``consistency_grid``.
      student_params: initial F parameters (Song et al. start from the teacher's).

    Returns:
      (state, losses, timesteps): ``state.params`` is the online network,
      ``state.ema_params`` the target network (which is what one samples).
    """
    _check_common(batch_size, steps)
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    features = features or time_features(process)
    tx = optimizer or optax.adam(1e-3)
    t_min = float(process.t_eps if t_min is None else t_min)
    ts = (np.asarray(timesteps, np.float32) if timesteps is not None
          else distill.consistency_grid(process, num_points, spacing=spacing, t_min=t_min))
    x_example = jnp.asarray(data_fn(0))
    if x_example.shape[0] != batch_size:
        raise ValueError(f"data_fn returned a batch of {x_example.shape[0]}, expected "
                         f"batch_size = {batch_size}")
    if student_params is None:
        student_params = _init_params(student, process, jax.random.fold_in(rng, _INIT_STREAM),
                                      x_example[:1], features)
    f = consistency_model_fn(student, process, t_min=t_min, sigma_data=sigma_data,
                             features=features)

    def loss_fn(p, ema, tp, x0, key):
        step = distill.ode_step_fn(lambda x, t: teacher_fn(tp, x, t), process,
                                   prediction=teacher_prediction, solver=solver)
        return distill.consistency_distillation_loss(
            lambda x, t: f(p, x, t), lambda x, t: f(ema, x, t), step, process, x0, key,
            timesteps=ts)

    state = TrainState.create(student_params, tx)
    state, losses = _train(loss_fn, state, tx, data_fn, jax.random.fold_in(rng, _STEP_STREAM),
                           steps, ema_decay, extra_args=(teacher_params,), fixed_ema=True,
                           log_every=log_every, tag="[CD]")
    return state, losses, ts


__all__ = ["Round", "consistency_distillation", "consistency_model_fn", "ddim_student_sample",
           "module_fn", "progressive_distillation", "time_features"]
