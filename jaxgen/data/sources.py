"""Random-access image sources.

A source is anything with ``__len__``, ``__getitem__(i) -> {'image': uint8
(H, W, C), 'label': int}`` and the attributes ``image_shape`` (H, W, C),
``num_classes`` and ``name``. Sources here also offer
``get_batch(indices) -> (images uint8 (n, H, W, C), labels int32 (n,))``, which
the pipeline uses to load a batch in one call.

Two kinds are provided:

* :class:`TFDSSource` wraps ``tfds.data_source`` (ArrayRecord files, random
  access, no TensorFlow). The dataset must already be prepared in
  ``data_dir`` in array_record format: we never download (training nodes are
  usually offline, and a failed download leaves partial directories behind).
* :class:`ArraySource` holds everything in memory (used for sklearn's
  ``digits``).

Names starting with 'toy:' denote the 2-D toy distributions of
:mod:`jaxgen.data.toy`, which :func:`make_source` returns as
:class:`~jaxgen.data.toy.ToySource` objects; 'stacked:NAME' stacks three images of a
one-channel dataset as RGB channels (:func:`stacked_source`, Stacked MNIST).
"""

from __future__ import annotations

import difflib
import functools
import os

import numpy as np

from jaxgen.data.toy import TOY_DISTRIBUTIONS, ToySource
from jaxgen.errors import DataError

__all__ = [
    "IMAGE_SOURCES",
    "TOY_DISTRIBUTIONS",
    "TOY_PREFIX",
    "DIGITS_SPLITS",
    "ArraySource",
    "TFDSSource",
    "tfds_source",
    "digits_source",
    "stacked_source",
    "make_source",
]

# Image datasets known to work. Any other TFDS image dataset prepared in
# array_record format also works through make_source; this list is what
# config validation can offer as suggestions.
IMAGE_SOURCES = ("digits", "mnist", "fashion_mnist", "cifar10")
TOY_PREFIX = "toy:"
STACKED_PREFIX = "stacked:"
# Seed of the permutations that pick a stacked example's second and third images.
STACKED_SEED = 1000
DIGITS_SPLITS = ("all", "train", "test")


class ArraySource:
    """An image source held in memory as uint8 arrays.

    Attributes:
      images: uint8 (N, H, W, C), read-only.
      labels: int32 (N,), read-only.
      image_shape: (H, W, C).
      num_classes: number of classes (labels lie in [0, num_classes)).
      name: dataset name, e.g. 'digits'.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, num_classes: int, name: str):
        images = np.asarray(images)
        labels = np.asarray(labels, dtype=np.int32)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DataError(f"{name}: images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
        if labels.shape != images.shape[:1]:
            raise DataError(f"{name}: labels shape {labels.shape} does not match {len(images)} images")
        # Read-only views: the pipeline may cache derived arrays, and the
        # arrays may be shared through the digits cache.
        self.images = images.view()
        self.images.flags.writeable = False
        self.labels = labels.view()
        self.labels.flags.writeable = False
        self.image_shape = tuple(int(d) for d in images.shape[1:])
        self.num_classes = int(num_classes)
        self.name = name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": int(self.labels[i])}

    def get_batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Returns (images uint8 (n, H, W, C), labels int32 (n,)) for indices (n,)."""
        idx = np.asarray(indices, dtype=np.int64)
        return self.images[idx], self.labels[idx]

    def __repr__(self) -> str:
        return f"ArraySource({self.name!r}, n={len(self)}, image_shape={self.image_shape})"


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as uint8 (N, 8, 8, 1) in 0..255 and int32 labels (cached)."""
    from sklearn.datasets import load_digits  # Lazy: sklearn import takes ~1 s.

    d = load_digits()
    # Pixel values are integers 0..16; map them onto the full uint8 range.
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = d.target.astype(np.int32)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _digits_split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Deterministic stratified 90/10 split: within each class, every 10th example is test."""
    if split == "all":
        return np.arange(len(labels))
    is_test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        # Position-based, not RNG-based, so the split can never change with a
        # numpy upgrade; stratifying keeps the 10 classes balanced in 'test'.
        is_test[members[9::10]] = True
    return np.flatnonzero(is_test if split == "test" else ~is_test)


def digits_source(split: str = "all") -> ArraySource:
    """scikit-learn's bundled 8x8 digits as an in-memory source.

    Args:
      split: 'all' (1797 examples), 'train' (1621) or 'test' (176). The
        train/test split is deterministic and stratified: within each class
        (in dataset order) every 10th example, starting at the 10th, is test.

    Returns:
      ArraySource with image_shape (8, 8, 1), uint8 images in 0..255
      (round(v * 255 / 16) of sklearn's 0..16 values), num_classes 10.
    """
    if split not in DIGITS_SPLITS:
        raise DataError(f"unknown split {split!r} for dataset 'digits'; available splits: {', '.join(DIGITS_SPLITS)}")
    images, labels = _digits_arrays()
    idx = _digits_split_indices(labels, split)
    name = "digits" if split == "all" else f"digits[{split}]"
    return ArraySource(images[idx], labels[idx], num_classes=10, name=name)


class TFDSSource:
    """Random access to a prepared TFDS image dataset (array_record, no TensorFlow).

    Use :func:`tfds_source` to construct; it turns TFDS failures into DataError.

    Attributes:
      image_shape: (H, W, C).
      num_classes: number of classes, or 0 if the dataset has no ClassLabel
        'label' feature (then every label is 0).
      name: TFDS dataset name.
      split: the split string, e.g. 'test[:90%]'.
      data_dir: the data_dir given (None = TFDS default).
    """

    def __init__(self, data_source, name: str, split: str, data_dir):
        self._ds = data_source
        self.name = name
        self.split = split
        self.data_dir = data_dir
        self._has_label = False
        self.image_shape, self.num_classes = self._read_metadata()
        # Probe batched access once: TFDS data sources implement
        # __getitems__, but some wrappers (e.g. tfds.testing.mock_data in
        # tfds 4.9) expose a broken one; fall back to per-item reads then.
        self._batched = False
        if hasattr(self._ds, "__getitems__") and len(self._ds) > 0:
            try:
                self._ds.__getitems__([0])
                self._batched = True
            except TypeError:
                self._batched = False

    def _read_metadata(self) -> tuple[tuple[int, int, int], int]:
        """(image_shape, num_classes) from the builder's features, else the first example."""
        features = None
        try:
            features = self._ds.dataset_info.features
        except AttributeError:
            pass
        shape, num_classes = None, 0
        if features is not None:
            if "image" not in features:
                raise DataError(
                    f"TFDS dataset {self.name!r} has no 'image' feature (features: {', '.join(features.keys())})"
                )
            feat_shape = tuple(features["image"].shape)
            if len(feat_shape) == 3 and all(d is not None for d in feat_shape):
                shape = tuple(int(d) for d in feat_shape)
            feat_dtype = np.dtype(getattr(features["image"], "np_dtype", np.uint8))
            if feat_dtype != np.uint8:
                raise DataError(f"TFDS dataset {self.name!r}: images are {feat_dtype}, only uint8 is supported")
            if "label" in features:
                self._has_label = True
                num_classes = int(getattr(features["label"], "num_classes", 0) or 0)
        if shape is None:
            if len(self._ds) == 0:
                raise DataError(f"TFDS dataset {self.name!r} split {self.split!r} is empty")
            first = self._ds[0]
            if "image" not in first:
                raise DataError(f"TFDS dataset {self.name!r} examples have no 'image' entry")
            self._has_label = "label" in first
            img = np.asarray(first["image"])
            if img.ndim == 2:  # Defensive: treat HW as HW1.
                img = img[..., None]
            shape = tuple(int(d) for d in img.shape)
        return shape, num_classes

    def __len__(self) -> int:
        return len(self._ds)

    def _convert(self, example: dict) -> dict:
        img = np.asarray(example["image"])
        if img.ndim == 2:
            img = img[..., None]
        label = int(example["label"]) if self._has_label else 0
        return {"image": img, "label": label}

    def __getitem__(self, i: int) -> dict:
        return self._convert(self._ds[int(i)])

    def get_batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Returns (images uint8 (n, H, W, C), labels int32 (n,)) for indices (n,)."""
        keys = [int(i) for i in np.asarray(indices).reshape(-1)]
        if self._batched:
            raw = self._ds.__getitems__(keys)
        else:
            raw = [self._ds[k] for k in keys]
        examples = [self._convert(e) for e in raw]
        try:
            images = np.stack([e["image"] for e in examples]).astype(np.uint8, copy=False)
        except ValueError as e:
            raise DataError(
                f"TFDS dataset {self.name!r} has images of varying shape; resize them before use ({e})"
            ) from None
        if images.shape[1:] != self.image_shape:
            raise DataError(
                f"TFDS dataset {self.name!r}: image shape {images.shape[1:]} != expected {self.image_shape}"
            )
        labels = np.array([e["label"] for e in examples], dtype=np.int32)
        return images, labels

    def __repr__(self) -> str:
        return f"TFDSSource({self.name!r}, split={self.split!r}, n={len(self)}, image_shape={self.image_shape})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def tfds_source(name: str, split: str, data_dir: str | os.PathLike | None = None) -> TFDSSource:
    """Opens a prepared TFDS image dataset for random access.

    Wraps ``tfds.data_source(name, split=split, data_dir=data_dir,
    download=False)``. Never downloads or prepares anything.

    Args:
      name: TFDS name, e.g. 'mnist', 'fashion_mnist', 'cifar10' (optionally
        with config/version, e.g. 'mnist:3.0.1').
      split: TFDS split string, e.g. 'train', 'test[:90%]', 'train+test'.
      data_dir: directory holding prepared datasets (None = TFDS default,
        usually ~/tensorflow_datasets).

    Returns:
      TFDSSource.

    Raises:
      DataError: unknown dataset name, missing data_dir, dataset not prepared
        (in array_record format) in data_dir, unknown or malformed split.
    """
    import tensorflow_datasets as tfds  # Lazy: only TFDS users pay the import.

    if data_dir is not None:
        data_dir = os.path.expanduser(os.fspath(data_dir))
        if not os.path.isdir(data_dir):
            raise DataError(f"data_dir {data_dir!r} does not exist (needed for TFDS dataset {name!r})")
    where = data_dir if data_dir is not None else "the default TFDS data_dir"

    def builder():
        # Only used to explain failures, so errors here are not interesting.
        return tfds.builder(name, data_dir=data_dir)

    try:
        ds = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except tfds.core.DatasetNotFoundError:
        try:
            # tfds.list_builders() would try to import TensorFlow; the
            # registry of imported builders is enough for suggestions.
            from tensorflow_datasets.core import registered

            known = registered.list_imported_builders()
        except Exception:  # noqa: BLE001 - suggestions are optional.
            known = []
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"unknown TFDS dataset name {name!r}{hint}") from None
    except ValueError as e:
        msg = _first_line(e)
        if "split" not in msg.lower():
            raise DataError(f"cannot open TFDS dataset {name!r} split {split!r} in {where}: {msg}") from None
        try:
            available = ", ".join(builder().info.splits.keys()) or "none recorded"
        except Exception:  # noqa: BLE001 - best effort for the message only.
            available = "unknown"
        if msg.startswith("Unknown split"):
            raise DataError(
                f"unknown split {split!r} for TFDS dataset {name!r} in {where}; available splits: {available}"
            ) from None
        raise DataError(
            f"bad split {split!r} for TFDS dataset {name!r} in {where} ({msg}); available splits: {available}"
        ) from None
    except (NotImplementedError, FileNotFoundError, AssertionError, OSError) as e:
        # With download=False an unprepared dataset surfaces as an unrelated
        # error (e.g. "random access for TFRECORD not supported"), so tell the
        # two real causes apart by asking the builder.
        try:
            b = builder()
            prepared, looked = b.is_prepared(), str(b.data_dir)
        except Exception:  # noqa: BLE001
            prepared, looked = False, where
        if not prepared:
            raise DataError(
                f"TFDS dataset {name!r} not found in {where} (looked in {looked}): it must be downloaded "
                f"and prepared first, e.g. `tfds build {name} --data_dir=DIR --file_format=array_record`"
            ) from None
        raise DataError(
            f"TFDS dataset {name!r} in {looked} cannot be read with random access ({_first_line(e)}); "
            f"re-prepare it with --file_format=array_record"
        ) from None
    return TFDSSource(ds, name=name, split=split, data_dir=data_dir)


def stacked_source(base, seed: int = STACKED_SEED) -> ArraySource:
    """Three images of a one-channel source stacked as the channels of one image.

    Stacked MNIST (Metz et al. 2017, sec. 3.3.2; Srivastava et al. 2017, sec. 5.2): with K
    classes in the base there are K**3 modes (1,000 for MNIST). Example i holds base images
    i, p1[i] and p2[i] as channels 0, 1 and 2, where p1, p2 are fixed random permutations
    of the base (from ``seed``); its label is ``K**2 l0 + K l1 + l2``. The stacked set has
    as many examples as the base and is held in memory.

    Args:
      base: a source of (H, W, 1) images with labels (``num_classes`` > 0).
      seed: seed of the permutations.

    Returns:
      ArraySource of (H, W, 3) images named 'stacked:<base name>'.
    """
    shape = tuple(base.image_shape)
    if shape[-1] != 1 or not base.num_classes:
        raise DataError(f"stacked:{base.name} needs one-channel images with labels, got "
                        f"image shape {shape} and {base.num_classes} classes")
    n = len(base)
    rng = np.random.default_rng(seed)
    index = np.stack([np.arange(n), rng.permutation(n), rng.permutation(n)], axis=1)
    images, labels = base.get_batch(np.arange(n))
    stacked, label = stack_channels(images, labels, index, int(base.num_classes))
    return ArraySource(stacked, label, num_classes=int(base.num_classes) ** 3,
                       name=f"{STACKED_PREFIX}{base.name}")


def stack_channels(images, labels, index, num_classes: int):
    """Stacks one-channel images as channels: example j holds ``images[index[j, c]]`` as
    channel c. Returns (stacked (n, H, W, C), joint label (n,) = sum_c K^(C-1-c) l_c)."""
    index = np.asarray(index, dtype=np.int64)
    images = np.asarray(images)[..., 0]
    labels = np.asarray(labels, dtype=np.int64)
    stacked = np.stack([images[index[:, c]] for c in range(index.shape[1])], axis=-1)
    label = np.zeros(len(index), np.int64)
    for c in range(index.shape[1]):
        label = label * num_classes + labels[index[:, c]]
    return stacked, label


def make_source(name: str, split: str = "train", data_dir: str | os.PathLike | None = None):
    """Builds a data source from a dataset name.

    Args:
      name: 'digits' (sklearn, in memory), 'toy:<distribution>' (2-D toy
        distribution, see TOY_DISTRIBUTIONS), 'stacked:<name>' (three images of a
        one-channel dataset as RGB channels, see stacked_source), or any TFDS image
        dataset name.
      split: for 'digits': 'all', 'train' or 'test' (see digits_source); for
        TFDS: any split string; ignored for toy distributions.
      data_dir: TFDS data directory; ignored for 'digits' and toy data.

    Returns:
      ArraySource, TFDSSource or ToySource.

    Raises:
      DataError: if the dataset cannot be opened.
    """
    if not isinstance(name, str) or not name:
        raise DataError(f"dataset name must be a non-empty string, got {name!r}")
    if name.startswith(TOY_PREFIX):
        return ToySource(name[len(TOY_PREFIX):])
    if name.startswith(STACKED_PREFIX):
        return stacked_source(make_source(name[len(STACKED_PREFIX):], split, data_dir))
    if name == "digits":
        return digits_source(split)
    return tfds_source(name, split, data_dir)
