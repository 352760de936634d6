"""The generic training loop: any family, one device or many, resumable.

A family object supplies ``init(rng) -> TrainState``, ``train_step(state, batch, rng)
-> (state, metrics)``, ``sample(params, rng, num)`` and ``evaluate(params, batch, rng)``.
The loop owns what is common: the mesh and shardings, data order, RNG, logging,
checkpoints and sample grids.

Determinism: the base key is ``jax.random.key(config.seed)``; step s uses
``fold_in(train_key, s)`` and the batch ``pipeline.batch(s)``, so a resumed run sees
the same randomness and data as an uninterrupted one.
"""

from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jaxgen import data, viz
from jaxgen.train import checkpoint, sharding
from jaxgen.train.metrics_log import MetricWriter

# Fixed stream names folded into the base key: each use of randomness has its own stream.
_INIT, _TRAIN, _SAMPLE, _EVAL = 0, 1, 2, 3


def keys(seed: int) -> dict:
    base = jax.random.key(seed)
    return {name: jax.random.fold_in(base, i)
            for name, i in (("init", _INIT), ("train", _TRAIN), ("sample", _SAMPLE),
                            ("eval", _EVAL))}


def make_family(config: ml_collections.ConfigDict, data_shape):
    from jaxgen.train import FAMILIES  # the registry imports every family module
    return FAMILIES[config.family](config, data_shape)


def open_data(config: ml_collections.ConfigDict, split: str | None = None):
    """The pipeline for ``split`` (default ``config.data.split``) with this process's slice."""
    source = data.make_source(config.data.name, split or config.data.split, config.data.data_dir)
    return data.Pipeline(source, config.train.batch_size, config.seed,
                         random_flip=config.data.random_flip)


def init_or_restore(family, mesh, mngr, seed: int):
    """Restores the latest checkpoint in ``mngr`` or initialises a fresh, replicated state."""
    repl = sharding.replicated(mesh)
    init_key = keys(seed)["init"]
    lowered = jax.jit(family.init, out_shardings=repl).lower(init_key)
    abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=repl),
                            lowered.out_info)
    state = checkpoint.restore_latest(mngr, abstract) if mngr is not None else None
    if state is not None:
        return state, True
    # Initialisation runs once; on XLA:CPU its many unrolled PRNG calls take ~4x longer to
    # compile with full optimisation than without, for no run-time benefit that matters.
    options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
    return lowered.compile(compiler_options=options)(init_key), False


def sampler(family):
    """The family's ``sample(params, rng, num)`` compiled once per ``num``."""
    return jax.jit(family.sample, static_argnums=2)


def write_samples(sample_fn, params, rng, path: str, num: int) -> str:
    """Samples on every process (the arrays may span hosts); process 0 writes the PNG."""
    images = sample_fn(params, rng, num)
    if jax.process_index() == 0:
        viz.save_samples(np.asarray(images.addressable_data(0)), path)
    return path


def train(config: ml_collections.ConfigDict, workdir: str, *, quiet: bool = False):
    """Trains (or resumes) the run in ``workdir`` to ``config.train.num_steps`` steps.

    Writes workdir/config.json, checkpoints/, metrics.jsonl, tb/, samples/ and, at the
    end, samples.png. Returns the final TrainState.
    """
    tcfg = config.train
    mesh = sharding.make_mesh()
    pipeline = open_data(config)
    os.makedirs(workdir, exist_ok=True)
    checkpoint.save_config(workdir, config, {"example_shape": list(pipeline.element_shape)})
    family = make_family(config, pipeline.element_shape)
    mngr = checkpoint.manager(workdir, keep=tcfg.keep_checkpoints)
    state, resumed = init_or_restore(family, mesh, mngr, config.seed)
    start = int(jax.device_get(state.step))
    if resumed and not quiet:
        tqdm.write(f"resuming from step {start} in {checkpoint.checkpoint_dir(workdir)}")

    repl, batch_sh = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    step_fn = jax.jit(family.train_step, in_shardings=(repl, batch_sh, repl),
                      out_shardings=(repl, repl), donate_argnums=(0,))
    train_key, sample_key = keys(config.seed)["train"], keys(config.seed)["sample"]
    sample_fn = sampler(family)
    writer = MetricWriter(workdir)
    bar = tqdm(total=tcfg.num_steps, initial=start, disable=quiet or jax.process_index() != 0,
               desc=f"{config.family}", dynamic_ncols=True)
    last_t, last_step = time.perf_counter(), start
    batches = data.iterate(pipeline, start, tcfg.num_steps - start)
    try:
        for step, local in batches:
            batch = sharding.global_batch(local, mesh)
            state, metrics = step_fn(state, batch, jax.random.fold_in(train_key, step))
            done = step + 1
            bar.update(1)
            if done % tcfg.log_every == 0 or done == tcfg.num_steps:
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                now = time.perf_counter()
                metrics["steps_per_sec"] = (done - last_step) / max(now - last_t, 1e-9)
                last_t, last_step = now, done
                writer.write(done, metrics)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}",
                                steps_s=f"{metrics['steps_per_sec']:.1f}")
            if done % tcfg.checkpoint_every == 0 or done == tcfg.num_steps:
                checkpoint.save(mngr, state)
            if tcfg.sample_every and done % tcfg.sample_every == 0 and done != tcfg.num_steps:
                write_samples(sample_fn, state.ema_params, sample_key,
                              os.path.join(workdir, "samples", f"step_{done:07d}.png"),
                              config.sampler.num_samples)
    finally:
        batches.close()
        bar.close()
        writer.close()
        mngr.wait_until_finished()
        mngr.close()
    path = write_samples(sample_fn, state.ema_params, sample_key,
                         os.path.join(workdir, "samples.png"), config.sampler.num_samples)
    if not quiet and jax.process_index() == 0:
        tqdm.write(f"wrote {path}")
    return state
