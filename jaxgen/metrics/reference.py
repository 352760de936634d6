"""Reference feature statistics of a dataset split, cached on disk.

The statistics of real data under a fixed extractor never change, so they are computed
once per (dataset, split, extractor hash, sample count) and stored as
``<cache_dir>/<dataset>-<split>-<extractor name>-<hash16>-n<count>-<key8>.npz``
(``key8`` hashes the exact split string, which the readable part only approximates).
A cached file is used only if it loads, its arrays match their stored checksum, and its
recorded dataset, split, extractor identifier, count and dimension are the ones asked
for; anything else (a truncated write, an edited file, another extractor's statistics
under a copied name) is recomputed and overwritten, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from typing import Optional

import numpy as np

from jaxgen.metrics.features import FeatureExtractor, feature_stats
from jaxgen.metrics.frechet import FeatureStats

__all__ = ["DEFAULT_STATS_DIR", "reference_stats", "reference_features", "reference_path",
           "load_split_images"]

DEFAULT_STATS_DIR = os.path.join("runs", "reference_stats")
_LOAD_CHUNK = 2048
log = logging.getLogger(__name__)


def _slug(text: str) -> str:
    text = text.replace("%", "pct").replace(":", "to")
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_") or "all"


def reference_path(dataset: str, split: str, extractor: FeatureExtractor, count: int,
                   cache_dir: str = DEFAULT_STATS_DIR, kind: str = "stats") -> str:
    """The cache file for (dataset, split, extractor, count): its statistics
    (``kind='stats'``) or its per-image features (``kind='features'``)."""
    key = json.dumps([dataset, split, extractor.hash, int(count)])
    key8 = hashlib.sha256(key.encode()).hexdigest()[:8]
    suffix = "" if kind == "stats" else f"-{kind}"
    name = (f"{_slug(dataset)}-{_slug(split)}-{extractor.name}-{extractor.hash[:16]}"
            f"-n{int(count)}-{key8}{suffix}.npz")
    return os.path.join(cache_dir, name)


def _open_source(dataset: str, split: str, data_dir):
    from jaxgen.data.sources import make_source  # lazy: tfds import is slow

    source = make_source(dataset, split, data_dir)
    if not hasattr(source, "get_batch") or not hasattr(source, "image_shape"):
        raise ValueError(f"{dataset!r} is not an image dataset")
    return source


def _image_chunks(source, count: int):
    from jaxgen.data.pipeline import preprocess

    for start in range(0, count, _LOAD_CHUNK):
        images, _ = source.get_batch(np.arange(start, min(start + _LOAD_CHUNK, count)))
        yield preprocess(images)


def load_split_images(dataset: str, split: str, data_dir=None,
                      max_samples: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``max_samples`` (default all) images of a split, in dataset order.

    Returns:
      (float32 images (N, H, W, C) in [-1, 1], int32 labels (N,)).
    """
    from jaxgen.data.pipeline import preprocess

    source = _open_source(dataset, split, data_dir)
    n = len(source) if max_samples is None else min(int(max_samples), len(source))
    images, labels = source.get_batch(np.arange(n))
    return preprocess(images), labels


def _validate(stats: FeatureStats, dataset: str, split: str, extractor: FeatureExtractor,
              count: int) -> Optional[str]:
    """None if the cached stats are the ones asked for, else what differs."""
    want = {"dataset": dataset, "split": split, "extractor": extractor.identifier,
            "count": count, "dim": extractor.feature_dim}
    got = {"dataset": stats.dataset, "split": stats.split, "extractor": stats.extractor,
           "count": stats.count, "dim": stats.dim}
    bad = [f"{k}={got[k]!r} (want {want[k]!r})" for k in want if got[k] != want[k]]
    if not (np.all(np.isfinite(stats.mean)) and np.all(np.isfinite(stats.cov))):
        bad.append("non-finite values")
    return ", ".join(bad) or None


def reference_stats(dataset: str, split: str, extractor: FeatureExtractor, *,
                    data_dir=None, cache_dir: str = DEFAULT_STATS_DIR,
                    max_samples: Optional[int] = None, batch_size: int = 256, mesh=None,
                    recompute: bool = False) -> FeatureStats:
    """Compute-or-load the FeatureStats of a dataset split under an extractor.

    Args:
      dataset: a ``jaxgen.data.make_source`` name ('mnist', 'digits', ...).
      split: its split string, e.g. 'test[:50%]' (TFDS) or 'train' (digits).
      extractor: the feature map; its hash is part of the cache key.
      data_dir: TFDS data_dir.
      cache_dir: where the .npz files live.
      max_samples: use the first max_samples examples (default all); the count used is
        part of the key.
      batch_size, mesh: as in ``extract_features``.
      recompute: ignore any cached file.

    Returns:
      FeatureStats whose count, extractor, dataset and split say what they describe.
    """
    source = _open_source(dataset, split, data_dir)
    if tuple(source.image_shape) != extractor.input_shape:
        raise ValueError(f"{dataset} {split} images are {tuple(source.image_shape)}, but "
                         f"{extractor.identifier} takes {extractor.input_shape}")
    count = len(source) if max_samples is None else min(int(max_samples), len(source))
    path = reference_path(dataset, split, extractor, count, cache_dir)
    if not recompute and os.path.exists(path):
        try:
            stats = FeatureStats.load(path)
            problem = _validate(stats, dataset, split, extractor, count)
        except (OSError, ValueError) as e:
            problem = str(e)
        if problem is None:
            log.info("reference stats loaded from %s", path)
            return stats
        log.warning("reference stats cache %s is unusable (%s); recomputing", path, problem)
    stats = feature_stats(extractor, _image_chunks(source, count), dataset=dataset,
                          split=split, batch_size=batch_size, mesh=mesh)
    stats.save(path)
    log.info("reference stats computed and saved to %s", path)
    return stats


def _features_metadata(dataset, split, extractor, features) -> dict:
    return {"dataset": dataset, "split": split, "extractor": extractor.identifier,
            "count": int(features.shape[0]), "dim": int(features.shape[1]),
            "checksum": hashlib.sha256(np.ascontiguousarray(features, np.float32)
                                       .tobytes()).hexdigest()}


def _load_features(path: str, want: dict) -> Optional[np.ndarray]:
    """The cached features at ``path`` if they are exactly the ones ``want`` describes."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta, features = json.loads(str(z["metadata"])), z["features"]
    except Exception as e:  # noqa: BLE001 - a damaged file is recomputed, whatever broke
        log.warning("reference features cache %s is unreadable (%s); recomputing", path, e)
        return None
    extractor = want["extractor"]
    expected = _features_metadata(want["dataset"], want["split"], extractor, features)
    if meta != expected or features.shape != (want["count"], extractor.feature_dim):
        log.warning("reference features cache %s does not match (%s); recomputing", path,
                    meta)
        return None
    return features


def reference_features(dataset: str, split: str, extractor: FeatureExtractor, count: int, *,
                       data_dir=None, cache_dir: str = DEFAULT_STATS_DIR,
                       batch_size: int = 256, mesh=None) -> np.ndarray:
    """Compute-or-load the features of the first ``count`` images of a split.

    KID and precision/recall compare samples with individual reference features (FD
    needs only their statistics, see ``reference_stats``). They are cached beside the
    statistics, keyed and verified the same way (dataset, split, extractor hash, count
    and a checksum of the array), so periodic evaluation extracts them once per run.

    Returns:
      float32 features (min(count, len(split)), D), in dataset order.
    """
    from jaxgen.metrics.features import extract_features

    source = _open_source(dataset, split, data_dir)
    count = min(int(count), len(source))
    path = reference_path(dataset, split, extractor, count, cache_dir, kind="features")
    want = {"dataset": dataset, "split": split, "extractor": extractor, "count": count}
    if os.path.exists(path):
        features = _load_features(path, want)
        if features is not None:
            return features
    images, _ = load_split_images(dataset, split, data_dir, max_samples=count)
    features = np.asarray(extract_features(extractor, images, batch_size=batch_size,
                                           mesh=mesh), np.float32)
    meta = _features_metadata(dataset, split, extractor, features)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, features=features, metadata=np.array(json.dumps(meta, sort_keys=True)))
    os.replace(tmp, path)
    return features
