"""Multi-process runs on JAX's own runtime (``jax.distributed``).

One process per host (or per GPU group), all running the same command. Each process
loads its own slice of every batch (``data.Pipeline``), the batch is assembled into
global arrays over a mesh of every device of every process, orbax writes checkpoints
cooperatively, and only process 0 writes logs, configs, pictures and reports.

Launch (GPU cluster, one process per host; the coordinator is process 0's host)::

  python -m jaxgen.main --config=... --workdir=/shared/run \
      --coordinator_address=host0:1234 --num_processes=4 --process_id=$RANK

On a TPU pod slice, or under SLURM / Open MPI, ``--distributed=auto`` lets
``jax.distributed.initialize`` read the topology from the environment. The workdir must
be on a file system every process sees.
"""

from __future__ import annotations

import os
from typing import Optional

import jax
import numpy as np

MODES = ("off", "auto")


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, mode: str = "off") -> bool:
    """Joins a multi-process run, before anything touches a device.

    Args:
      coordinator_address: 'host:port' of process 0 (or the env var
        ``JAX_COORDINATOR_ADDRESS``); with it, ``num_processes`` and ``process_id`` are
        required.
      num_processes, process_id: the run's size and this process's rank.
      mode: 'auto' initialises from the cluster environment (TPU pods, SLURM, Open MPI)
        without an address; 'off' (default) initialises only when an address is given.

    Returns:
      True if ``jax.distributed`` was initialised.

    Raises:
      ValueError: an address without a process count and id, or an unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"distributed mode must be one of {MODES}, got {mode!r}")
    address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if address is None and mode == "off":
        return False
    if address is not None and (num_processes is None or process_id is None):
        raise ValueError("--coordinator_address needs --num_processes and --process_id")
    if num_processes is not None and not 0 <= (process_id or 0) < num_processes:
        raise ValueError(f"--process_id must be in [0, {num_processes}), got {process_id}")
    # Collectives between CPU devices of different processes (tests, CPU clusters) go
    # through gloo; GPU and TPU backends ignore this option.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=address, num_processes=num_processes,
                               process_id=process_id)
    return True


def agree(code: int) -> int:
    """The largest of every process's ``code`` (a small non-negative int), on every
    process; ``code`` itself in a single-process run (no communication)."""
    if jax.process_count() == 1:
        return int(code)
    from jax.experimental import multihost_utils
    return int(np.max(multihost_utils.process_allgather(np.asarray(code, np.int32))))


def to_host(x) -> np.ndarray:
    """A (possibly multi-process, batch-sharded) array as one numpy array on every
    process."""
    if jax.process_count() == 1 or getattr(x, "is_fully_addressable", True):
        return np.asarray(jax.device_get(x))
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def local_mesh():
    """A mesh of this process's devices (for work each process does on its own data,
    such as feature extraction of gathered samples)."""
    from jaxgen.train import sharding
    return sharding.make_mesh(jax.local_devices())
