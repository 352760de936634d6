"""Weights for the FID InceptionV3 (``jaxgen.nets.inception``): the file format and a
checked loader. ``jaxgen.metrics.inception_extractor`` turns the loaded network into a
hashed, sharded feature extractor.

Weights cannot be shipped here. ``experiments/convert_inception_weights.py`` turns
pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (``FID_WEIGHTS_URL``) into the
``.npz`` format read by ``load_inception_variables``:

* one float array per entry of pytorch-fid's ``state_dict``, under the same key and in
  PyTorch layout: ``<block>.conv.weight`` (O, I, kH, kW); ``<block>.bn.weight``,
  ``.bn.bias``, ``.bn.running_mean``, ``.bn.running_var`` (C,); ``fc.weight``
  (1008, 2048) and ``fc.bias`` (1008,);
* ``fc.*`` is required only when logits are requested; ``*.num_batches_tracked``
  (PyTorch training bookkeeping) is ignored; any other key is an error.
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Any, Mapping, Union

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from jaxgen.nets.inception import FID_WEIGHTS_URL, INPUT_SIZE, InceptionV3

__all__ = ["expected_state_dict_shapes", "file_sha256", "load_inception_variables",
           "variables_from_state_dict"]

# (collection, Flax leaf name) -> suffix of the PyTorch state_dict key.
_TORCH_LEAF = {("params", "kernel"): "weight", ("params", "scale"): "weight",
               ("params", "bias"): "bias", ("batch_stats", "mean"): "running_mean",
               ("batch_stats", "var"): "running_var"}
# Axes that take a PyTorch-layout array to the Flax layout, by rank.
_TO_FLAX_AXES = {4: (2, 3, 1, 0),   # conv (O, I, kH, kW) -> (kH, kW, I, O)
                 2: (1, 0)}         # fc (out, in) -> (in, out)
_MAX_NAMED = 20


@functools.lru_cache(maxsize=2)
def _layout(include_logits: bool) -> tuple[tuple[str, tuple, tuple, Any], ...]:
    """Every variable of the network as (PyTorch key, Flax path, PyTorch shape, axes to Flax).

    Derived from the module itself (``jax.eval_shape``, nothing is computed), so the
    loader can never disagree with the architecture.
    """
    model = InceptionV3(include_logits=include_logits, resize_input=False)
    shapes = jax.eval_shape(model.init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))
    entries = []
    for path, leaf in flatten_dict(shapes).items():
        collection, *modules, leaf_name = path
        key = ".".join([*modules, _TORCH_LEAF[(collection, leaf_name)]])
        axes = _TO_FLAX_AXES.get(leaf.ndim)
        torch_shape = leaf.shape if axes is None else tuple(leaf.shape[axes.index(i)]
                                                            for i in range(leaf.ndim))
        entries.append((key, path, tuple(torch_shape), axes))
    return tuple(sorted(entries))


def expected_state_dict_shapes(include_logits: bool = True) -> dict[str, tuple[int, ...]]:
    """The weight file's keys and their PyTorch-layout shapes.

    Args:
        include_logits: include ``fc.weight`` (1008, 2048) and ``fc.bias`` (1008,).

    Returns:
        ``{key: shape}``, e.g. ``'Conv2d_1a_3x3.conv.weight': (32, 3, 3, 3)``.
    """
    return {key: shape for key, _, shape, _ in _layout(include_logits)}


def _names(items) -> str:
    items = list(items)
    more = f", ... and {len(items) - _MAX_NAMED} more" if len(items) > _MAX_NAMED else ""
    return ", ".join(items[:_MAX_NAMED]) + more


def variables_from_state_dict(state_dict: Mapping[str, Any], include_logits: bool = False,
                              source: str = "state dict") -> dict:
    """Flax variables of ``InceptionV3`` from a PyTorch-layout state dict.

    Args:
        state_dict: key -> array in the format of this module's docstring (pytorch-fid keys,
            PyTorch layout). ``*.num_batches_tracked`` is ignored, as is ``fc.*`` when
            ``include_logits`` is False.
        include_logits: also load ``fc`` (then it must be present).
        source: how to name the input in error messages (e.g. the file path).

    Returns:
        ``{'params': ..., 'batch_stats': ...}`` of float32 arrays, for
        ``InceptionV3(include_logits=include_logits).apply``.

    Raises:
        ValueError: naming every missing, unexpected and mis-shaped key.
    """
    layout = _layout(include_logits)
    expected = {key: shape for key, _, shape, _ in layout}
    optional = set() if include_logits else {"fc.weight", "fc.bias"}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(k for k in state_dict if k not in expected and k not in optional
                        and not k.endswith(".num_batches_tracked"))
    misshaped = sorted(f"{k} has shape {tuple(np.shape(state_dict[k]))}, expected {expected[k]}"
                       for k in set(expected) & set(state_dict)
                       if tuple(np.shape(state_dict[k])) != expected[k])
    if missing or unexpected or misshaped:
        lines = [f"{source} does not hold the FID InceptionV3 weights in jaxgen's format "
                 "(pytorch-fid state_dict keys, PyTorch layout):"]
        for label, items in (("missing", missing), ("unexpected", unexpected),
                             ("mis-shaped", misshaped)):
            if items:
                lines.append(f"  {len(items)} {label} key{'s' if len(items) > 1 else ''}: "
                             f"{_names(items)}")
        if len(missing) == len(expected):
            lines.append("  (none of the expected keys is present: convert pytorch-fid's .pth "
                         "with experiments/convert_inception_weights.py)")
        raise ValueError("\n".join(lines))
    flat = {}
    for key, path, _, axes in layout:
        arr = np.asarray(state_dict[key], dtype=np.float32)
        flat[path] = jnp.asarray(arr if axes is None else arr.transpose(axes))
    return unflatten_dict(flat)


def load_inception_variables(path: Union[str, os.PathLike], include_logits: bool = False) -> dict:
    """Reads a weights ``.npz`` (format in the module docstring) into Flax variables.

    Args:
        path: the ``.npz`` written by ``experiments/convert_inception_weights.py``.
        include_logits: also load the 1008-way ``fc`` layer.

    Returns:
        ``{'params': ..., 'batch_stats': ...}`` for ``InceptionV3(include_logits=...)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not an .npz, or has missing/unexpected/mis-shaped keys.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no InceptionV3 weights at {path!r}; download "
                                f"{FID_WEIGHTS_URL} and convert it with "
                                "experiments/convert_inception_weights.py")
    if path.endswith((".pth", ".pt")):
        raise ValueError(f"{path} is a PyTorch checkpoint; convert it to .npz first with "
                         "experiments/convert_inception_weights.py")
    try:
        with np.load(path, allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
    except (ValueError, OSError) as err:
        raise ValueError(f"cannot read {path} as an .npz of arrays: {err}") from err
    return variables_from_state_dict(state, include_logits, source=path)


def file_sha256(path: Union[str, os.PathLike]) -> str:
    """Hex SHA-256 of a file's bytes (identifies the weights a statistic was computed with)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
