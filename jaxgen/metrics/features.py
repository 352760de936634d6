"""Feature extractors for FD / KID / precision-recall, identified by a content hash.

A ``FeatureExtractor`` is a pure ``apply_fn(params, images) -> features`` with its
parameters, a name and the sha256 of its serialized form (parameters, architecture
config, input shape). Numbers computed from its features cite ``extractor.identifier``
(``name@hash12``), so two FDs are known to be comparable exactly when the identifiers
agree. The serialized form is what ``save`` writes (flax msgpack), hence
``sha256sum FILE`` reproduces the hash in the file name.

Extraction runs jitted over a ``jax.sharding.Mesh`` (batch split over its data axis,
parameters replicated); see ``extract_features``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Callable, Iterable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxgen.core import xla_options
from jaxgen.metrics.frechet import FeatureStats, StatsAccumulator

__all__ = ["FeatureExtractor", "classifier_extractor", "inception_extractor", "load_extractor",
           "extract_features", "feature_stats", "DEFAULT_FEATURE_DIR", "INCEPTION_NAME"]

DEFAULT_FEATURE_DIR = os.path.join("runs", "feature_nets")
_FORMAT = 1
# Rows of images per host-side step of feature_stats. Fixed (not a multiple of the device
# count) so that the float64 accumulation order, and hence the statistics, do not depend
# on how many devices computed the features.
_STATS_CHUNK = 2048
_FILE_RE = re.compile(r"-([0-9a-f]{16})\.msgpack$")


def _canonical(tree):
    """Nested dicts with sorted keys and numpy leaves: one byte string per content."""
    if isinstance(tree, dict) or hasattr(tree, "items"):
        return {str(k): _canonical(tree[k]) for k in sorted(tree.keys())}
    return np.asarray(tree)


class FeatureExtractor:
    """A named, hashed feature map from images to vectors.

    Attributes:
      name: short name, e.g. 'classifier-mnist' (letters, digits, '-', '_', '.').
      kind: how ``load_extractor`` rebuilds ``apply_fn`` ('classifier' or 'custom').
      config: JSON-able dict of architecture settings (part of the hash).
      input_shape: (H, W, C) the extractor accepts.
      params: the parameter tree (numpy leaves, keys sorted).
      hash: sha256 hex digest of ``to_bytes()``.
    """

    def __init__(self, name: str, apply_fn: Callable, params, *, input_shape: Sequence[int],
                 kind: str = "custom", config: Optional[dict] = None):
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name or ""):
            raise ValueError(f"extractor name must be letters, digits, '-', '_' or '.', "
                             f"got {name!r}")
        self.name = name
        self.kind = kind
        self.config = dict(config or {})
        self.input_shape = tuple(int(d) for d in input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"input_shape must be (H, W, C), got {input_shape}")
        self.params = _canonical(params)
        self.apply_fn = apply_fn
        self._bytes = serialization.msgpack_serialize({
            "format": _FORMAT, "name": name, "kind": kind,
            "config": json.dumps(self.config, sort_keys=True),
            "input_shape": list(self.input_shape), "params": self.params})
        self.hash = hashlib.sha256(self._bytes).hexdigest()
        self._fns = {}

    @property
    def identifier(self) -> str:
        """'name@<first 12 hex digits of the hash>', the string every result cites."""
        return f"{self.name}@{self.hash[:12]}"

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.hash[:16]}.msgpack"

    @property
    def feature_dim(self) -> int:
        x = jax.ShapeDtypeStruct((1,) + self.input_shape, jnp.float32)
        return int(jax.eval_shape(self.apply_fn, self.params, x).shape[-1])

    def to_bytes(self) -> bytes:
        return self._bytes

    def save(self, directory: str = DEFAULT_FEATURE_DIR) -> str:
        """Writes ``directory/<name>-<hash16>.msgpack`` atomically; returns its path."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, self.filename)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(self._bytes)
        os.replace(tmp, path)
        return path

    def compiled(self, mesh: Mesh, axis: str) -> tuple:
        """(``apply_fn`` jitted with params replicated and the batch split over ``axis``,
        the params placed replicated on the mesh), cached per (mesh, axis)."""
        key = (mesh, axis)  # Mesh hashes by its devices and axis names
        if key not in self._fns:
            batch = NamedSharding(mesh, P(axis))
            self._fns[key] = (xla_options.jit(self.apply_fn,
                                              in_shardings=(NamedSharding(mesh, P()), batch),
                                              out_shardings=batch),
                              jax.device_put(self.params, NamedSharding(mesh, P())))
        return self._fns[key]

    def __call__(self, images, **kwargs) -> np.ndarray:
        return extract_features(self, images, **kwargs)

    def __repr__(self) -> str:
        return f"FeatureExtractor({self.identifier}, input_shape={self.input_shape})"


def _classifier_apply(config: dict) -> Callable:
    from jaxgen.nets.classifier import Classifier  # nets import flax; only needed here

    model = Classifier(num_classes=config["num_classes"], channels=tuple(config["channels"]),
                       feature_dim=config["feature_dim"])

    def apply_fn(params, images):
        return model.apply({"params": params}, images)[1]

    return apply_fn


def classifier_extractor(params, *, name: str, input_shape: Sequence[int],
                         num_classes: int = 10, channels: Sequence[int] = (32, 64, 128),
                         feature_dim: int = 128) -> FeatureExtractor:
    """The penultimate features of a ``jaxgen.nets.classifier.Classifier``.

    Args:
      params: the classifier's ``params`` collection.
      name: e.g. 'classifier-mnist'.
      input_shape: (H, W, C) of the dataset.
      num_classes, channels, feature_dim: the Classifier's attributes.
    """
    config = {"num_classes": int(num_classes), "channels": [int(c) for c in channels],
              "feature_dim": int(feature_dim)}
    return FeatureExtractor(name, _classifier_apply(config), params, input_shape=input_shape,
                            kind="classifier", config=config)


INCEPTION_NAME = "inception-v3-pool3"


def _inception_apply(config: dict) -> Callable:
    from jaxgen.nets.inception import apply_inception  # flax, only needed here

    def apply_fn(params, images):
        return apply_inception(params, images)

    return apply_fn


def inception_extractor(weights_path: str, input_shape: Sequence[int]) -> FeatureExtractor:
    """The pool3 features (2048) of the FID InceptionV3 (``jaxgen.nets.inception``) for
    images of ``input_shape`` (H, W, 1 or 3; resized to 299x299 inside).

    Args:
      weights_path: the ``.npz`` written by ``experiments/convert_inception_weights.py``
        (format: ``jaxgen.nets.inception_weights``).
      input_shape: (H, W, C) of the dataset; part of the hash, like every extractor's.

    Returns:
      A FeatureExtractor named ``INCEPTION_NAME`` whose hash covers the weights (and
      whose config records the sha256 of the ``.npz`` they came from).
    """
    from jaxgen.nets.inception_weights import file_sha256, load_inception_variables

    variables = load_inception_variables(weights_path)
    config = {"weights_sha256": file_sha256(weights_path), "features": "pool3",
              "resize": "bilinear 299x299, align_corners=False"}
    return FeatureExtractor(INCEPTION_NAME, _inception_apply(config), variables,
                            input_shape=input_shape, kind="inception", config=config)


def load_extractor(path: str, apply_fn: Optional[Callable] = None,
                   input_shape: Optional[Sequence[int]] = None) -> FeatureExtractor:
    """Loads an extractor written by ``FeatureExtractor.save`` and verifies its hash, or
    builds the FID InceptionV3 extractor from its ``.npz`` weights.

    Args:
      path: the .msgpack file, or an InceptionV3 ``.npz`` (see ``inception_extractor``).
      apply_fn: needed for kind 'custom' (its code is not stored); 'classifier' and
        'inception' extractors rebuild theirs from the stored config.
      input_shape: (H, W, C) of the images, needed for an ``.npz``.

    Raises:
      ValueError: the file is corrupted (its content does not hash to the 16 hex
        digits in its name) or is not an extractor file.
    """
    if path.endswith(".npz"):
        if input_shape is None:
            raise ValueError(f"{path}: InceptionV3 weights need the images' input_shape")
        return inception_extractor(path, input_shape)
    with open(path, "rb") as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    m = _FILE_RE.search(os.path.basename(path))
    if m and not digest.startswith(m.group(1)):
        raise ValueError(f"{path}: content hash {digest[:16]} does not match the file name; "
                         f"the file is corrupted or was modified")
    try:
        payload = serialization.msgpack_restore(data)
        if payload.get("format") != _FORMAT:
            raise ValueError(f"unknown format {payload.get('format')!r}")
        config = json.loads(payload["config"])
        kind = payload["kind"]
    except Exception as e:  # noqa: BLE001 - msgpack raises several types on garbage
        raise ValueError(f"{path}: not a feature extractor file ({e})") from None
    if kind == "classifier":
        apply_fn = _classifier_apply(config)
    elif kind == "inception":
        apply_fn = _inception_apply(config)
    elif apply_fn is None:
        raise ValueError(f"{path}: extractor kind {kind!r} needs its apply_fn passed in")
    ext = FeatureExtractor(payload["name"], apply_fn, payload["params"],
                           input_shape=payload["input_shape"], kind=kind, config=config)
    if ext.hash != digest:
        raise ValueError(f"{path}: re-serialized content hashes differently; not a canonical "
                         f"extractor file")
    return ext


def _single_device_mesh(axis: str) -> Mesh:
    return Mesh(np.asarray(jax.devices()[:1]), (axis,))


def extract_features(extractor: FeatureExtractor, images, *, batch_size: int = 256,
                     mesh: Optional[Mesh] = None, axis: str = "data") -> np.ndarray:
    """Features of images, computed in fixed-size batches split over a mesh.

    Every step sends ``batch_size`` images to each device of the mesh's ``axis``; the
    last step is zero-padded (features are per-image, so padding changes nothing) and
    every device always runs one compiled program on one batch shape. The per-device
    program is therefore the same for any device count, which is what makes features
    from 1 and 8 devices agree (on XLA:CPU to the last float32 bit of some images, from
    the multi-threaded convolutions' work split; see tests/metrics).

    Args:
      extractor: the feature map.
      images: float (N, H, W, C) in [-1, 1] with (H, W, C) = extractor.input_shape.
      batch_size: images per device per step.
      mesh: a Mesh with axis ``axis`` over devices of this process; None uses the
        first device. Multi-process meshes are not supported (each process would have
        to pass its own slice).
      axis: the mesh axis the batch is split over.

    Returns:
      float32 (N, D) numpy array on the host.
    """
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[1:] != extractor.input_shape:
        raise ValueError(f"images must be (N, {', '.join(map(str, extractor.input_shape))}) "
                         f"for {extractor.identifier}, got shape {x.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    mesh = _single_device_mesh(axis) if mesh is None else mesh
    if axis not in mesh.axis_names:
        raise ValueError(f"mesh has axes {mesh.axis_names}, not {axis!r}")
    if any(d.process_index != jax.process_index() for d in mesh.devices.flat):
        raise ValueError("extract_features needs a mesh of this process's devices only")
    fn, params = extractor.compiled(mesh, axis)
    step = batch_size * mesh.shape[axis]
    sharding = NamedSharding(mesh, P(axis))
    out = []
    for start in range(0, len(x), step):
        chunk = x[start:start + step]
        n = len(chunk)
        if n < step:
            chunk = np.concatenate([chunk, np.zeros((step - n,) + chunk.shape[1:], np.float32)])
        feats = fn(params, jax.device_put(chunk, sharding))
        out.append(np.asarray(feats, np.float32)[:n])
    if not out:
        return np.zeros((0, extractor.feature_dim), np.float32)
    return np.concatenate(out)


def feature_stats(extractor: FeatureExtractor, images, *, dataset: str = "", split: str = "",
                  batch_size: int = 256, mesh: Optional[Mesh] = None,
                  axis: str = "data") -> FeatureStats:
    """Streams images through the extractor into float64 FeatureStats.

    Args:
      extractor: the feature map.
      images: an array (N, H, W, C) in [-1, 1], or an iterable of such arrays (e.g. a
        sampler's batches); only one chunk of features is in memory at a time.
      dataset, split: provenance recorded in the result.
      batch_size, mesh, axis: as in ``extract_features``.

    Returns:
      FeatureStats with count, extractor identifier, dataset and split.
    """
    acc = StatsAccumulator()
    for chunk in _chunks(images):
        acc.update(extract_features(extractor, chunk, batch_size=batch_size, mesh=mesh, axis=axis))
    return acc.result(extractor.identifier, dataset, split)


def _chunks(images) -> Iterable[np.ndarray]:
    """Yields blocks of exactly _STATS_CHUNK rows (the last one shorter).

    Batches of an iterable are buffered and re-cut, so neither a sampler's batch size
    nor the device count sets the float64 accumulation order.
    """
    if isinstance(images, (np.ndarray, jax.Array)):
        for start in range(0, len(images), _STATS_CHUNK):
            yield np.asarray(images[start:start + _STATS_CHUNK])
        return
    buffer, held = [], 0
    for batch in images:
        batch = np.asarray(batch)
        buffer.append(batch)
        held += len(batch)
        while held >= _STATS_CHUNK:
            joined = np.concatenate(buffer)
            yield joined[:_STATS_CHUNK]
            rest = joined[_STATS_CHUNK:]
            buffer, held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield np.concatenate(buffer)
