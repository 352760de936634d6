"""Checkpoints with orbax's CheckpointManager, and the run's config beside them.

A save is asynchronous and atomic: orbax writes step N into ``N.orbax-checkpoint-tmp``
and renames it to ``N`` only once every array is on disk, so a process killed while
saving leaves the earlier checkpoints intact plus a temporary directory, which the next
training manager deletes (``cleanup=True``). A state holding NaN or Inf is never saved.

Restoring walks back from the newest checkpoint past any that cannot be read (truncated
or deleted files), warning once for each; training moves those aside to
``N.damaged`` so that step N can be saved again. When checkpoints exist but none can be
restored, ``CheckpointError`` says so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from jaxgen.train import state as state_lib

CONFIG_FILE = "config.json"
META_FILE = "run.json"
# Items of a checkpoint: the TrainState, and the loop's own counters (JSON).
STATE_ITEM, LOOP_ITEM = "state", "loop"
DAMAGED_SUFFIX = ".damaged"

_all_finite_on_device = jax.jit(state_lib.all_finite)


def _all_finite(state) -> bool:
    """Whether every floating-point array of ``state`` is free of NaN and Inf.

    In one process with the state in host memory the check reads the arrays' shards in
    place (a jitted reduction over every leaf of a large state takes seconds to compile);
    otherwise it is one jitted reduction, whose answer every process shares.
    """
    leaves = jax.tree.leaves(state)
    on_host = jax.process_count() == 1 and all(
        isinstance(x, np.ndarray) or (isinstance(x, jax.Array)
                                      and all(d.platform == "cpu" for d in x.devices()))
        for x in leaves)
    if not on_host:
        return bool(_all_finite_on_device(state))
    for x in leaves:
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            continue
        shards = [x] if isinstance(x, np.ndarray) else [s.data for s in x.addressable_shards]
        if not all(np.isfinite(np.asarray(s)).all() for s in shards):
            return False
    return True


class CheckpointError(RuntimeError):
    """Checkpoints exist but none can be restored.

    Attributes:
      directory: the checkpoint directory.
      failures: ``[(step, 'ErrorType: first line of the error'), ...]``, newest first.
    """

    def __init__(self, directory: str, failures: list[tuple[int, str]]):
        self.directory = directory
        self.failures = failures
        detail = "; ".join(f"step {s}: {why}" for s, why in failures)
        super().__init__(f"no checkpoint in {directory} can be restored ({detail})")

    @property
    def steps(self) -> list[int]:
        return [s for s, _ in self.failures]


@dataclasses.dataclass
class Restored:
    """A restored checkpoint: its step, TrainState and loop counters (``{}`` if none)."""

    step: int
    state: Any
    loop_state: dict


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def manager(workdir: str, keep: int | None = 3, create: bool = True, *, cleanup: bool = False,
            temporary_path_class=None) -> ocp.CheckpointManager:
    """A manager that keeps the ``keep`` most recent checkpoints under workdir/checkpoints.

    Saves are asynchronous; call ``wait_until_finished()`` before the process ends.

    Args:
      create: False (for reading a finished run) leaves a missing directory missing.
      cleanup: delete the temporary directories of saves that never finished (a process
        killed while saving). Only the process that trains may do this: a reader must not
        delete the save a running trainer is writing.
      temporary_path_class: an orbax ``TemporaryPath`` class replacing the default atomic
        rename (used by ``faults`` to kill the process inside a save).
    """
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create,
                                           cleanup_tmp_directories=cleanup,
                                           temporary_path_class=temporary_path_class)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def step_dir(mngr: ocp.CheckpointManager, step: int) -> str:
    """The directory of ``step`` (the manager names steps by their number alone)."""
    return os.path.join(str(mngr.directory), str(step))


def latest_path(mngr: ocp.CheckpointManager) -> str | None:
    """The directory of the newest committed checkpoint (after pending saves finish)."""
    mngr.wait_until_finished()
    step = mngr.latest_step()
    return None if step is None else step_dir(mngr, step)


def save(mngr: ocp.CheckpointManager, state, *, loop_state: dict | None = None) -> bool:
    """Starts saving ``state`` under its own step number (asynchronously).

    Args:
      loop_state: JSON-able counters of the loop (e.g. skipped steps) saved beside it.

    Returns:
      False if that step is already saved, else True.

    Raises:
      FloatingPointError: if the state holds NaN or Inf (nothing is written).
    """
    step = int(jax.device_get(state.step))
    if not _all_finite(state):
        raise FloatingPointError(f"refusing to save step {step}: the state holds NaN or Inf")
    args = {STATE_ITEM: ocp.args.StandardSave(state)}
    if loop_state is not None:
        args[LOOP_ITEM] = ocp.args.JsonSave(loop_state)
    return mngr.save(step, args=ocp.args.Composite(**args))


def _one_line(error: BaseException, limit: int = 160) -> str:
    text = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {text[0] if text else ''}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _AbortedReadNoise(logging.Filter):
    """Hides what orbax prints after a restore from a damaged checkpoint failed.

    When one array cannot be read, orbax closes its event loop while tensorstore is still
    reading the others; each of those reads then reports "Event loop is closed" through
    ``sys.unraisablehook`` and asyncio logs "Future exception was never retrieved", some
    time after the restore returned: dozens of tracebacks on stderr for one damaged
    checkpoint, which ``restore_latest`` already reports in one line. Installed on the
    first failure only; it drops just those two kinds of message (the second only when it
    names a directory that failed).
    """

    def __init__(self):
        super().__init__()
        self.dirs: set[str] = set()
        self._previous_hook = None

    def add(self, directory: str) -> None:
        self.dirs.add(directory)
        if self._previous_hook is None:
            self._previous_hook = sys.unraisablehook
            sys.unraisablehook = self._unraisable
            logging.getLogger("asyncio").addFilter(self)

    def _unraisable(self, unraisable) -> None:
        error = unraisable.exc_value
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            self._previous_hook(unraisable)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(d in message for d in self.dirs)


_aborted_read_noise = _AbortedReadNoise()


def _restore_step(mngr: ocp.CheckpointManager, step: int, abstract_state) -> Restored:
    args = {STATE_ITEM: ocp.args.StandardRestore(abstract_state)}
    # Checkpoints written before the loop item existed lack it.
    if os.path.isdir(os.path.join(step_dir(mngr, step), LOOP_ITEM)):
        args[LOOP_ITEM] = ocp.args.JsonRestore()
    out = mngr.restore(step, args=ocp.args.Composite(**args))
    state = out[STATE_ITEM]
    # Arrays that read back but are not what was saved: a copied or overwritten directory,
    # or corruption that kept the file format valid. Saved states are always finite.
    got = int(jax.device_get(state.step))
    if got != step:
        raise ValueError(f"directory {step} holds the state of step {got}")
    if not _all_finite(state):
        raise ValueError("the restored state holds NaN or Inf")
    return Restored(step, state, dict(out[LOOP_ITEM]) if LOOP_ITEM in args else {})


def set_aside(mngr: ocp.CheckpointManager, step: int) -> str:
    """Renames the directory of ``step`` to ``<step>.damaged`` (``.damaged-2``, ... if
    taken), which orbax does not list, so the run can save that step again while the
    files stay for inspection. Returns the new path."""
    src = step_dir(mngr, step)
    dst, n = src + DAMAGED_SUFFIX, 1
    while os.path.exists(dst):
        n += 1
        dst = f"{src}{DAMAGED_SUFFIX}-{n}"
    if jax.process_index() == 0:
        os.rename(src, dst)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(f"jaxgen set_aside {step}")
    mngr.reload()
    return dst


def restore_latest(mngr: ocp.CheckpointManager, abstract_state, *, set_aside_damaged=False,
                   warn: Callable[[str], None] | None = None) -> Restored | None:
    """Restores the newest checkpoint that can be read into the shapes/shardings of
    ``abstract_state``, warning (one line each) about newer ones that cannot.

    Args:
      abstract_state: a pytree of ``jax.ShapeDtypeStruct`` with shardings (e.g. from
        ``jax.eval_shape``) describing the TrainState.
      set_aside_damaged: move unreadable checkpoints newer than the restored one aside
        (``set_aside``); the training loop needs this to save those steps again.
      warn: called with each warning line (default: ignored).

    Returns:
      The restored checkpoint, or None when the directory holds no checkpoint.

    Raises:
      CheckpointError: checkpoints exist but none can be restored (nothing is moved).
    """
    warn = warn or (lambda message: None)
    failures = []
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            restored = _restore_step(mngr, step, abstract_state)
        except Exception as e:  # damage shows as ValueError, KeyError, OSError, JSON errors...
            _aborted_read_noise.add(step_dir(mngr, step))
            failures.append((step, _one_line(e)))
            continue
        for bad, why in failures:
            where = set_aside(mngr, bad) if set_aside_damaged else step_dir(mngr, bad)
            warn(f"warning: checkpoint {step_dir(mngr, bad)} cannot be restored ({why}); "
                 f"{'moved to ' + where + '; ' if set_aside_damaged else ''}"
                 f"using step {step} instead")
        return restored
    if failures:
        raise CheckpointError(str(mngr.directory), failures)
    return None


def write_atomic(path: str, text: str) -> None:
    """Replaces the text file ``path`` in one rename: readers see the old or the new
    content, never a partial one."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def save_config(workdir: str, config: ml_collections.ConfigDict, meta: dict) -> None:
    """Writes the run's config, and what the data told us (``meta``, e.g. the example
    shape), as JSON beside the checkpoints (process 0 only)."""
    if jax.process_index() == 0:
        write_atomic(os.path.join(workdir, CONFIG_FILE),
                      config.to_json_best_effort(indent=2, sort_keys=True))
        write_atomic(os.path.join(workdir, META_FILE), json.dumps(meta, indent=2))


def save_meta(workdir: str, updates: dict) -> None:
    """Adds ``updates`` to the run's metadata (process 0 only)."""
    if jax.process_index() == 0:
        meta = load_meta(workdir)
        meta.update(updates)
        write_atomic(os.path.join(workdir, META_FILE), json.dumps(meta, indent=2))


def load_meta(workdir: str) -> dict:
    with open(os.path.join(workdir, META_FILE)) as f:
        return json.load(f)


def default_config() -> dict:
    """The defaults of every field (``jaxgen.defaults.get_config()``) as a nested dict."""
    from jaxgen.defaults import get_config
    return get_config().to_dict()


def _merge(defaults: dict, saved: dict) -> dict:
    out = dict(defaults)
    for key, value in saved.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(workdir: str, fill_defaults: bool = True) -> ml_collections.ConfigDict:
    """The config a run was trained with (``workdir/config.json``).

    With ``fill_defaults``, fields added to ``jaxgen/defaults.py`` after the run was saved
    take their defaults (which keep the behaviour older runs had); saved values win.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: {workdir!r} is not a jaxgen run directory")
    with open(path) as f:
        saved = json.load(f)
    return ml_collections.ConfigDict(_merge(default_config(), saved) if fill_defaults
                                     else saved)
