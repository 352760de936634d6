"""Sharding over a Mesh of all devices: the batch over every device, the parameters and
optimizer state either replicated (data parallel) or split over the ``fsdp`` axis
(fully sharded data parallel, Zhao et al. 2023 "PyTorch FSDP"; in JAX, GSPMD's
ZeRO-3-style parameter sharding).

The mesh has two axes, ``data`` x ``fsdp``. A batch is split over both (every device
gets its own examples). With ``fsdp`` = k > 1 each large array of the training state is
split k ways along one of its dimensions and stored once per group of k devices; XLA's
SPMD partitioner inserts the all-gathers before use and the reduce-scatters of the
gradients. The arithmetic is that of data parallelism, so losses agree with it up to the
order of floating-point sums.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)
# Arrays smaller than this (elements) stay replicated under FSDP: biases and norms cost
# more in collectives than they save in memory.
FSDP_MIN_SIZE = 1024


def make_mesh(devices=None, fsdp: int = 1) -> Mesh:
    """A (data, fsdp) mesh over all (global) devices, ``fsdp`` devices per FSDP group."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    if fsdp < 1 or devices.size % fsdp:
        raise ValueError(f"fsdp={fsdp} must be a positive divisor of the device count "
                         f"({devices.size})")
    return Mesh(devices.reshape(devices.size // fsdp, fsdp), BATCH_AXES)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split across every device of the mesh (over its ``data``
    and ``fsdp`` axes; a mesh of one ``data`` axis works too)."""
    return NamedSharding(mesh, P(tuple(a for a in BATCH_AXES if a in mesh.axis_names)))


def fsdp_spec(shape, fsdp: int) -> P:
    """Where an array of ``shape`` is split under FSDP of size ``fsdp``: along its largest
    dimension that ``fsdp`` divides; replicated if small or if none does."""
    if fsdp == 1 or math.prod(shape) < FSDP_MIN_SIZE:
        return P()
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % fsdp == 0:
            return P(*[FSDP_AXIS if d == dim else None for d in range(len(shape))])
    return P()


def state_shardings(abstract_state, mesh: Mesh):
    """Shardings of a training state (a pytree of arrays or ShapeDtypeStructs): FSDP over
    the mesh's ``fsdp`` axis, replicated when it has size 1."""
    fsdp = mesh.shape.get(FSDP_AXIS, 1)
    return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(x.shape, fsdp)),
                        abstract_state)


def bytes_per_device(tree) -> int:
    """Bytes of ``tree``'s arrays that the first device holds (its shards)."""
    total = 0
    for x in jax.tree.leaves(tree):
        shard = x.sharding.shard_shape(x.shape)
        total += math.prod(shard) * x.dtype.itemsize
    return total


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
    """Assembles each process's slice of the batch into global, batch-sharded arrays."""
    sharding = batch_sharded(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local_batch.items()}
