"""Checkpoints with orbax's CheckpointManager, and the run's config beside them."""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"
META_FILE = "run.json"


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def manager(workdir: str, keep: int | None = 3, create: bool = True) -> ocp.CheckpointManager:
    """A manager that keeps the ``keep`` most recent checkpoints under workdir/checkpoints.

    Saves are asynchronous; call ``wait_until_finished()`` before the process ends.
    ``create=False`` (for reading a finished run) leaves a missing directory missing.
    """
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(mngr: ocp.CheckpointManager, state, *, force: bool = False) -> None:
    """Saves ``state`` under its own step number."""
    step = int(jax.device_get(state.step))
    mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)), force=force)


def restore_latest(mngr: ocp.CheckpointManager, abstract_state):
    """Restores the latest checkpoint into the shapes/shardings of ``abstract_state``.

    Args:
      abstract_state: a pytree of ``jax.ShapeDtypeStruct`` with shardings (e.g. from
        ``jax.eval_shape``) describing the TrainState.

    Returns:
      The restored state, or None when the directory holds no checkpoint.
    """
    step = mngr.latest_step()
    if step is None:
        return None
    restored = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))
    return restored["state"]


def _write_atomic(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def save_config(workdir: str, config: ml_collections.ConfigDict, meta: dict) -> None:
    """Writes the run's config, and what the data told us (``meta``, e.g. the example
    shape), as JSON beside the checkpoints (process 0 only)."""
    if jax.process_index() == 0:
        _write_atomic(os.path.join(workdir, CONFIG_FILE),
                      config.to_json_best_effort(indent=2, sort_keys=True))
        _write_atomic(os.path.join(workdir, META_FILE), json.dumps(meta, indent=2))


def load_meta(workdir: str) -> dict:
    with open(os.path.join(workdir, META_FILE)) as f:
        return json.load(f)


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: {workdir!r} is not a jaxgen run directory")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))
