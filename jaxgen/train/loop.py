"""The generic training loop: any family, one device or many, resumable.

A family object supplies ``init(rng) -> TrainState``, ``train_step(state, batch, rng)
-> (state, metrics)``, ``sample(params, rng, num)`` and ``evaluate(params, batch, rng)``.
The loop owns what is common: the mesh and shardings, data order, RNG, logging,
checkpoints and sample grids.

Determinism: the base key is ``jax.random.key(config.seed)``; step s uses
``fold_in(train_key, s)`` and the batch ``pipeline.batch(s)``, so a resumed run sees
the same randomness and data as an uninterrupted one, and ends bitwise equal to it.

Failures: SIGTERM or SIGINT finishes the current step, saves it and raises
``Preempted``; a non-finite loss, gradient or parameter stops the run (``NonFiniteError``)
or skips the update, as ``config.train.on_nonfinite`` says; checkpoints that cannot be
read are passed over (see ``checkpoint``).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
import time

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jaxgen import data, viz
from jaxgen.core import xla_options
from jaxgen.train import checkpoint, distributed, evaluation, faults, report, sharding
from jaxgen.train import state as state_lib
from jaxgen.train.metrics_log import MetricWriter

# Fixed stream names folded into the base key: each use of randomness has its own stream.
_INIT, _TRAIN, _SAMPLE, _EVAL = 0, 1, 2, 3
METRICS_FILE = "metrics.jsonl"


class Preempted(Exception):
    """Training stopped on SIGTERM/SIGINT after saving the current step.

    Attributes:
      step: the saved step. path: its checkpoint directory. signal_name: e.g. 'SIGTERM'.
    """

    def __init__(self, step: int, path: str, signal_name: str):
        self.step, self.path, self.signal_name = step, path, signal_name
        super().__init__(f"{signal_name}: stopped at step {step} after saving checkpoint "
                         f"{path}; rerun the same command to continue")


class NonFiniteError(FloatingPointError):
    """An update's loss, gradients or parameters were NaN or Inf (train.on_nonfinite='stop').

    Attributes:
      step: the first such update (numbered like ``state.step`` after it).
      last_checkpoint: the newest checkpoint directory (all saved states are finite), or
        None if none was saved.
    """

    def __init__(self, step: int, last_checkpoint: str | None):
        self.step, self.last_checkpoint = step, last_checkpoint
        super().__init__(f"non-finite loss or gradients at step {step}; last good checkpoint: "
                         f"{last_checkpoint or 'none saved'} (train.on_nonfinite='skip' "
                         "skips such steps)")


def keys(seed: int) -> dict:
    base = jax.random.key(seed)
    return {name: jax.random.fold_in(base, i)
            for name, i in (("init", _INIT), ("train", _TRAIN), ("sample", _SAMPLE),
                            ("eval", _EVAL))}


def make_family(config: ml_collections.ConfigDict, data_shape):
    from jaxgen.train import get_family
    return get_family(config.family)(config, data_shape)


def open_data(config: ml_collections.ConfigDict, split: str | None = None):
    """The pipeline for ``split`` (default ``config.data.split``) with this process's slice."""
    source = data.make_source(config.data.name, split or config.data.split, config.data.data_dir)
    return data.Pipeline(source, config.train.batch_size, config.seed,
                         random_flip=config.data.random_flip)


def _postfix(metrics: dict) -> dict:
    """What the progress bar shows: the losses a family reports (``loss``, or e.g. a GAN's
    ``d_loss`` and ``g_loss``) and the speed."""
    shown = {k: f"{v:.4f}" for k, v in metrics.items() if k == "loss" or k.endswith("_loss")}
    return {**dict(list(shown.items())[:3]), "steps_s": f"{metrics['steps_per_sec']:.1f}"}


def warn(message: str) -> None:
    """Prints a one-line warning on stderr (process 0), whatever the ``quiet`` setting."""
    if jax.process_index() == 0:
        tqdm.write(message, file=sys.stderr)


def guarded_step(family, state_shardings, mesh):
    """The loop's jitted step ``(state, guard, batch, rng) -> (state, guard, metrics)``:
    ``family.train_step`` behind the non-finite guard, the state sharded as
    ``state_shardings`` and donated, the batch split over the mesh."""
    repl, batch_sh = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    return xla_options.jit(state_lib.guard_nonfinite(family.train_step),
                           in_shardings=(state_shardings, repl, batch_sh, repl),
                           out_shardings=(state_shardings, repl, repl), donate_argnums=(0, 1))


def init_or_restore(family, mesh, mngr, seed: int, *, set_aside_damaged: bool = False,
                    allow_fresh_start: bool = False):
    """Restores the newest readable checkpoint in ``mngr``, or initialises a fresh state,
    sharded over ``mesh`` as ``sharding.state_shardings`` says (replicated, or FSDP).
    A checkpoint written on another number of devices is resharded as it loads.

    Args:
      set_aside_damaged: move unreadable checkpoints aside (training only).
      allow_fresh_start: when checkpoints exist but none can be read, move them all aside
        and start from step 0 instead of raising ``checkpoint.CheckpointError``.

    Returns:
      ``(state, restored)``: restored is the ``checkpoint.Restored`` or None if fresh.
    """
    init_key = keys(seed)["init"]
    shardings = sharding.state_shardings(jax.eval_shape(family.init, init_key), mesh)
    lowered = jax.jit(family.init, out_shardings=shardings).lower(init_key)
    abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                            lowered.out_info, shardings)
    restored = None
    if mngr is not None:
        try:
            restored = checkpoint.restore_latest(mngr, abstract, warn=warn,
                                                 set_aside_damaged=set_aside_damaged)
        except checkpoint.CheckpointError as e:
            if not allow_fresh_start:
                raise
            moved = [checkpoint.set_aside(mngr, step) for step in e.steps]
            warn(f"warning: {e}; moved them to {', '.join(moved)}; starting from step 0")
    if restored is not None:
        return restored.state, restored
    # Initialisation runs once; on XLA:CPU its many unrolled PRNG calls take ~4x longer to
    # compile with full optimisation than without, for no run-time benefit that matters.
    extra = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else {}
    return lowered.compile(compiler_options=xla_options.options(**extra))(init_key), None


def sampler(family):
    """The family's ``sample(params, rng, num)`` compiled once per ``num``."""
    return xla_options.jit(family.sample, static_argnums=2)


def picture_options(config: ml_collections.ConfigDict, family) -> dict:
    """How a run's samples are drawn (``viz.save_samples`` keywords): a class-conditional
    family's grid has one column per class (its samples cycle through the labels); toy
    points with a known density are drawn over it."""
    options = {"nrow": getattr(family, "num_classes", 0) or None}
    name = config.data.name
    toy = name[len(data.TOY_PREFIX):] if name.startswith(data.TOY_PREFIX) else None
    if toy in data.HAS_LOG_PROB:
        options["log_density"] = functools.partial(data.log_prob, toy)
    return options


def write_samples(sample_fn, params, rng, path: str, num: int, **options) -> str:
    """Samples on every process (the arrays may span hosts); process 0 writes the PNG
    (``options``: see ``picture_options``)."""
    images = sample_fn(params, rng, num)
    if jax.process_index() == 0:
        viz.save_samples(np.asarray(images.addressable_data(0)), path, **options)
    return path


def rewind_metrics(workdir: str, step: int) -> None:
    """Drops the lines of workdir/metrics.jsonl logged after ``step``.

    A run killed after logging step s but before saving it logs s again when resumed
    from an earlier checkpoint; rewinding to the restored step keeps one line per step,
    as an uninterrupted run writes. A line cut short by the kill is dropped too.
    """
    path = os.path.join(workdir, METRICS_FILE)
    if jax.process_index() != 0 or not os.path.exists(path):
        return
    with open(path) as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line if line.endswith("\n") else line + "\n")
        except (ValueError, KeyError, TypeError):
            continue
    if kept != lines:
        checkpoint.write_atomic(path, "".join(kept))


class _StopSignals:
    """Turns the first SIGTERM or SIGINT into a request to stop after the current step.

    The handlers are installed only from the main thread (Python delivers signals
    there). After the first signal the previous handlers are back, so a second one acts
    as it would without jaxgen (e.g. a second Ctrl-C raises KeyboardInterrupt).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.name = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.name = signal.Signals(signum).name
        self.restore()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous = {}


_STOP_CODES = (None,) + tuple(sig.name for sig in _StopSignals.SIGNALS)


def _agreed_stop(name: str | None) -> str | None:
    """The stop request of any process (the same on all of them), or None."""
    return _STOP_CODES[distributed.agree(_STOP_CODES.index(name))]


def train(config: ml_collections.ConfigDict, workdir: str, *, quiet: bool = False,
          allow_fresh_start: bool = False):
    """Trains (or resumes) the run in ``workdir`` to ``config.train.num_steps`` steps.

    Writes workdir/config.json, checkpoints/, metrics.jsonl, tb/, samples/ and, at the
    end, samples.png. Returns the final TrainState.

    Args:
      quiet: no progress bar or info lines (warnings still go to stderr).
      allow_fresh_start: if every checkpoint in the workdir is unreadable, move them aside
        and start from step 0 (otherwise ``checkpoint.CheckpointError``).

    Raises:
      Preempted: SIGTERM or SIGINT arrived; the current step was saved.
      NonFiniteError: a non-finite update with ``train.on_nonfinite='stop'``.
      checkpoint.CheckpointError: checkpoints exist but none can be restored.
    """
    tcfg = config.train
    skip_nonfinite = tcfg.on_nonfinite == "skip"
    injected = faults.Faults.from_env()
    mesh = sharding.make_mesh(fsdp=tcfg.fsdp)
    pipeline = open_data(config)
    os.makedirs(workdir, exist_ok=True)
    checkpoint.save_config(workdir, config, {"example_shape": list(pipeline.element_shape)})
    family = make_family(config, pipeline.element_shape)
    mngr = checkpoint.manager(workdir, keep=tcfg.keep_checkpoints, cleanup=True,
                              temporary_path_class=injected.temporary_path_class())
    try:
        state, restored = init_or_restore(family, mesh, mngr, config.seed,
                                          set_aside_damaged=True,
                                          allow_fresh_start=allow_fresh_start)
    except BaseException:
        mngr.close()
        raise
    start = int(jax.device_get(state.step))
    if restored is not None and not quiet and jax.process_index() == 0:
        tqdm.write(f"resuming from step {start} in {checkpoint.checkpoint_dir(workdir)}")
    rewind_metrics(workdir, start)

    repl = sharding.replicated(mesh)
    state_sh = jax.tree.map(lambda x: x.sharding, state)
    checkpoint.save_meta(workdir, {"mesh": dict(mesh.shape),
                                   "state_bytes_per_device": sharding.bytes_per_device(state)})
    skipped = int(restored.loop_state.get("skipped_steps", 0)) if restored else 0
    guard = jax.device_put(state_lib.init_guard(skipped), repl)
    step_fn = guarded_step(family, state_sh, mesh)
    train_key, sample_key = keys(config.seed)["train"], keys(config.seed)["sample"]
    eval_key = keys(config.seed)["eval"]
    sample_fn = sampler(family)
    pictures = picture_options(config, family)
    writer = MetricWriter(workdir, start)
    bar = tqdm(total=tcfg.num_steps, initial=start, disable=quiet or jax.process_index() != 0,
               desc=f"{config.family}", dynamic_ncols=True)
    last_t, last_step = time.perf_counter(), start
    batches = data.iterate(pipeline, start, tcfg.num_steps - start)
    stop = _StopSignals()
    multi_process = jax.process_count() > 1
    try:
        for step, local in batches:
            done = step + 1  # == state.step after this update; names logs and checkpoints
            if injected:
                local = injected.poison(local, done)
            batch = sharding.global_batch(local, mesh)
            state, guard, metrics = step_fn(state, guard, batch,
                                            jax.random.fold_in(train_key, step))
            if injected:
                injected.after_step(done, stopping=lambda: stop.name is not None)
            bar.update(1)
            log_now = done % tcfg.log_every == 0 or done == tcfg.num_steps
            save_now = done % tcfg.checkpoint_every == 0 or done == tcfg.num_steps
            stopping = stop.name  # read once: a signal may land anywhere in this body
            if multi_process:
                # Every process must stop after the same step (saving is collective), so
                # the processes agree at log and checkpoint boundaries, where they sync
                # anyway: a signal is acted on within train.log_every steps.
                stopping = _agreed_stop(stop.name) if log_now or save_now else None
            save_now = save_now or stopping is not None
            if log_now or save_now:
                # The only host syncs: at log and checkpoint boundaries, never per step.
                g = jax.device_get(guard)
                if int(g["first_bad"]) >= 0 and not skip_nonfinite:
                    raise NonFiniteError(int(g["first_bad"]), checkpoint.latest_path(mngr))
                if int(g["skipped"]) > skipped:
                    warn(f"warning: skipped {int(g['skipped']) - skipped} update(s) with "
                         f"non-finite loss or gradients by step {done} "
                         f"({int(g['skipped'])} in all)")
                    skipped = int(g["skipped"])
            if log_now:
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                if skip_nonfinite:
                    metrics["skipped_steps"] = skipped
                now = time.perf_counter()
                metrics["steps_per_sec"] = (done - last_step) / max(now - last_t, 1e-9)
                last_t, last_step = now, done
                writer.write(done, metrics)
                bar.set_postfix(_postfix(metrics))
            if save_now:
                try:
                    checkpoint.save(mngr, state, loop_state={"skipped_steps": skipped})
                except FloatingPointError:
                    raise NonFiniteError(done, checkpoint.latest_path(mngr)) from None
            if stopping is not None:
                mngr.wait_until_finished()  # the checkpoint is committed before we exit
                raise Preempted(done, checkpoint.step_dir(mngr, done), stopping)
            if config.eval.every and done % config.eval.every == 0:
                quality = evaluation.sample_quality(config, family, state.ema_params,
                                                    jax.random.fold_in(eval_key, done), workdir,
                                                    mesh)
                writer.write(done, evaluation.numeric(quality))
            if tcfg.sample_every and done % tcfg.sample_every == 0 and done != tcfg.num_steps:
                write_samples(sample_fn, state.ema_params, sample_key,
                              os.path.join(workdir, "samples", f"step_{done:07d}.png"),
                              config.sampler.num_samples, **pictures)
    finally:
        stop.restore()
        batches.close()
        bar.close()
        writer.close()
        mngr.wait_until_finished()
        mngr.close()
    path = write_samples(sample_fn, state.ema_params, sample_key,
                         os.path.join(workdir, "samples.png"), config.sampler.num_samples,
                         **pictures)
    if jax.process_index() == 0:
        report_path = report.write_report(workdir)
        if not quiet:
            tqdm.write(f"wrote {path} and {report_path}")
    return state
