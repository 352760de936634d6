"""Deterministic, resumable, multi-host batching.

Data order is a pure function of (seed, step). With global batch size B,
step s covers the global example positions s*B .. s*B + B - 1. For a source
of N examples, position p belongs to epoch e = p // N and reads example
perm_e[p % N], where perm_e is a permutation determined by (seed, e) alone.
Process i of P reads only positions [s*B + i*B/P, s*B + (i+1)*B/P), so the
concatenation of all processes' batches is exactly the single-process batch,
and resuming at step s needs no state besides s.

Per-example randomness is keyed by (seed, global position) through a
counter-based hash, never by a local index or a stateful RNG: the random
horizontal flip and the toy samples of position p are the same whatever the
process count, and each epoch re-draws the flips (its positions differ).

Batches are numpy arrays in host memory; putting them on devices (e.g. with
``jax.make_array_from_process_local_data``) is the training loop's job.
"""

from __future__ import annotations

import collections
import queue
import threading

import numpy as np

from jaxgen.data.sources import ArraySource
from jaxgen.data.toy import FLIP_TAG, PERM_TAG, ToySource, hash_u64
from jaxgen.errors import ConfigError, DataError

__all__ = ["preprocess", "epoch_permutation", "Pipeline", "iterate", "PrefetchIterator"]

# In-memory sources up to this size (as float32) are preprocessed once.
_DENSE_CACHE_BYTES = 256 * 2**20
# Epoch permutations kept; >1 because a batch may straddle an epoch boundary.
_PERM_CACHE_SIZE = 4


def preprocess(images_uint8: np.ndarray, flip_mask: np.ndarray | None = None) -> np.ndarray:
    """Maps uint8 images to float32 in [-1, 1], optionally mirroring some.

    Args:
      images_uint8: uint8 (n, H, W, C).
      flip_mask: optional bool (n,); True mirrors that image horizontally
        (along W).

    Returns:
      float32 (n, H, W, C) equal to x / 127.5 - 1 (0 -> -1, 255 -> 1).
    """
    images = np.asarray(images_uint8)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"preprocess expects uint8 (n, H, W, C) images, got {images.dtype} {images.shape}")
    x = images.astype(np.float32) * np.float32(1.0 / 127.5) - np.float32(1.0)
    if flip_mask is not None:
        mask = np.asarray(flip_mask, dtype=bool)
        if mask.shape != (len(images),):
            raise ValueError(f"flip_mask must have shape ({len(images)},), got {mask.shape}")
        x[mask] = x[mask][:, :, ::-1]
    return x


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the n examples.

    Sorting per-index hashes (rather than ``Generator.permutation``) makes the
    order independent of the numpy version, so a run resumed on another
    machine sees the same data.

    Returns:
      int64 (n,) permutation of 0 .. n-1.
    """
    keys = hash_u64(np.arange(n, dtype=np.int64), seed, PERM_TAG, epoch)
    return np.argsort(keys, kind="stable")


def _check_int(value, field: str, allowed: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(field, value, allowed)
    return int(value)


class Pipeline:
    """Deterministic batches of one process's slice of the global batch.

    Attributes:
      source: the image source (ArraySource, TFDSSource, any object with
        __len__/__getitem__) or a ToySource.
      global_batch_size: B, examples per step over all processes.
      local_batch_size: B / P, examples per step for this process.
      seed: data seed.
      random_flip: whether images are mirrored with probability 1/2.
      process_index, process_count: this process's slot.
      is_toy: True for toy distributions.
      num_examples: N for image sources, None for toy data.
      element_shape: (H, W, C) for images, (D,) for toy data.
      num_classes: number of classes (0 for toy data).
    """

    def __init__(
        self,
        source,
        global_batch_size: int,
        seed: int,
        random_flip: bool = False,
        process_index: int | None = None,
        process_count: int | None = None,
    ):
        if isinstance(source, str):
            raise TypeError(f"Pipeline needs a source object; use make_source({source!r}, split, data_dir)")
        if process_index is None or process_count is None:
            import jax  # Lazy: keeps `import jaxgen.data` light.

            process_index = jax.process_index() if process_index is None else process_index
            process_count = jax.process_count() if process_count is None else process_count
        process_count = _check_int(process_count, "process_count", "must be a positive integer", 1)
        if isinstance(process_index, bool) or not isinstance(process_index, (int, np.integer)) or not (
            0 <= process_index < process_count
        ):
            raise ConfigError("process_index", process_index, f"must be an integer in [0, {process_count})")
        if (
            isinstance(global_batch_size, bool)
            or not isinstance(global_batch_size, (int, np.integer))
            or global_batch_size <= 0
            or global_batch_size % process_count
        ):
            raise ConfigError(
                "train.batch_size",
                global_batch_size,
                f"must be a positive integer divisible by the process count ({process_count})",
            )
        self.seed = _check_int(seed, "seed", "must be a non-negative integer", 0)
        self.source = source
        self.global_batch_size = int(global_batch_size)
        self.process_index = int(process_index)
        self.process_count = process_count
        self.local_batch_size = self.global_batch_size // process_count
        self.random_flip = bool(random_flip)
        self.is_toy = isinstance(source, ToySource)

        self._perm_cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._dense = None
        if self.is_toy:
            if self.random_flip:
                raise ConfigError("data.random_flip", random_flip, "only supported for image datasets")
            self.num_examples = None
            self.element_shape = (source.dim,)
            self.num_classes = 0
        else:
            self.num_examples = len(source)
            if self.num_examples == 0:
                raise DataError(f"dataset {getattr(source, 'name', source)!r} has no examples")
            self.element_shape = tuple(source.image_shape)
            self.num_classes = int(source.num_classes)
            if isinstance(source, ArraySource) and source.images.size * 4 <= _DENSE_CACHE_BYTES:
                # Small in-memory data: convert once, then batches are a gather.
                self._dense = preprocess(source.images)

    # -- positions and indices ------------------------------------------------

    def global_positions(self, step: int) -> np.ndarray:
        """int64 (B,) global example positions of ``step``."""
        step = _check_int(step, "step", "must be a non-negative integer", 0)
        return step * self.global_batch_size + np.arange(self.global_batch_size, dtype=np.int64)

    def local_positions(self, step: int) -> np.ndarray:
        """int64 (B/P,) global positions of this process's slice of ``step``."""
        step = _check_int(step, "step", "must be a non-negative integer", 0)
        start = step * self.global_batch_size + self.process_index * self.local_batch_size
        return start + np.arange(self.local_batch_size, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        with self._lock:
            perm = self._perm_cache.get(epoch)
            if perm is not None:
                self._perm_cache.move_to_end(epoch)
                return perm
        perm = epoch_permutation(self.seed, epoch, self.num_examples)
        with self._lock:
            self._perm_cache[epoch] = perm
            while len(self._perm_cache) > _PERM_CACHE_SIZE:
                self._perm_cache.popitem(last=False)
        return perm

    def example_indices(self, positions) -> np.ndarray:
        """Maps global positions (n,) to source indices (n,) (image sources only)."""
        if self.is_toy:
            raise TypeError("toy distributions have no example indices")
        pos = np.asarray(positions, dtype=np.int64)
        epochs = pos // self.num_examples
        within = pos % self.num_examples
        out = np.empty_like(pos)
        # A batch usually lies in one epoch, at most a few when B > N.
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self._permutation(int(e))[within[sel]]
        return out

    def flip_mask(self, positions) -> np.ndarray:
        """bool (n,): whether the examples at these global positions are mirrored."""
        pos = np.asarray(positions, dtype=np.int64)
        if not self.random_flip:
            return np.zeros(pos.shape, dtype=bool)
        return (hash_u64(pos, self.seed, FLIP_TAG) >> np.uint64(63)).astype(bool)

    # -- batches ---------------------------------------------------------------

    def batch(self, step: int) -> dict:
        """This process's part of the global batch for ``step``.

        Returns:
          For image sources: {'x': float32 (B/P, H, W, C) in [-1, 1],
          'label': int32 (B/P,)}. For toy data: {'x': float32 (B/P, D)}.
        """
        pos = self.local_positions(step)
        if self.is_toy:
            return {"x": self.source.sample_at(self.seed, pos)}
        idx = self.example_indices(pos)
        flips = self.flip_mask(pos) if self.random_flip else None
        if self._dense is not None:
            x = self._dense[idx]  # Fancy indexing copies, so flipping is safe.
            if flips is not None:
                x[flips] = x[flips][:, :, ::-1]
            labels = np.asarray(self.source.labels[idx], dtype=np.int32)
            return {"x": x, "label": labels}
        if hasattr(self.source, "get_batch"):
            images, labels = self.source.get_batch(idx)
        else:
            examples = [self.source[int(i)] for i in idx]
            images = np.stack([np.asarray(e["image"]) for e in examples])
            labels = np.array([int(e["label"]) for e in examples], dtype=np.int32)
        return {"x": preprocess(images, flips), "label": np.asarray(labels, dtype=np.int32)}

    def __repr__(self) -> str:
        return (
            f"Pipeline({self.source!r}, global_batch_size={self.global_batch_size}, seed={self.seed}, "
            f"random_flip={self.random_flip}, process={self.process_index}/{self.process_count})"
        )


class _Failure:
    """Carries an exception from the loader thread to the consumer."""

    def __init__(self, exc: BaseException):
        self.exc = exc


_DONE = object()


def _loader(pipeline, steps, out: queue.Queue, stop: threading.Event) -> None:
    """Thread body. Must not reference the iterator, so the latter can be collected."""

    def put(item) -> bool:
        # Poll so that a consumer that went away (stop set) never leaves us
        # blocked forever on a full queue.
        while not stop.is_set():
            try:
                out.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    try:
        for step in steps:
            if stop.is_set():
                return
            if not put((step, pipeline.batch(step))):
                return
    except BaseException as e:  # noqa: BLE001 - re-raised in the consumer.
        put(_Failure(e))
        return
    put(_DONE)


class PrefetchIterator:
    """Iterator over (step, batch) loading batches ahead in a daemon thread.

    At most ``prefetch`` finished batches wait in the queue, plus the one the
    thread is loading, so host memory stays bounded.

    The loader thread starts at construction, so the first batches load while
    the caller is still, e.g., compiling the model. Exceptions raised while
    loading are re-raised from ``__next__`` (original type and traceback).
    Call ``close()`` (or use ``with``) to stop early; it is also called when
    the iterator is exhausted or garbage-collected. The thread is a daemon,
    so it can never keep the interpreter alive.
    """

    def __init__(self, pipeline, start_step: int, num_steps: int | None, prefetch: int):
        steps = _step_range(start_step, num_steps)
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(
            target=_loader, args=(pipeline, steps, self._queue, self._stop), name="jaxgen-prefetch", daemon=True
        )
        self._thread.start()

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if item is _DONE:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.exc
        return item

    def close(self, timeout: float = 5.0) -> None:
        """Stops the loader thread and waits up to ``timeout`` s for it to exit."""
        self._finished = True
        self._stop.set()
        # Drain so a loader blocked on put() notices the stop promptly.
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            # A batch being loaded is finished first; bounded so close() cannot hang.
            self._thread.join(timeout)

    @property
    def thread(self) -> threading.Thread:
        """The loader thread (exposed for tests and debugging)."""
        return self._thread

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def __del__(self):
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()  # Don't join in a finaliser; the daemon thread exits on its own.


class _SyncIterator:
    """prefetch=0: loads each batch on demand in the calling thread."""

    def __init__(self, pipeline, start_step, num_steps):
        self._pipeline = pipeline
        self._steps = iter(_step_range(start_step, num_steps))

    def __iter__(self):
        return self

    def __next__(self):
        step = next(self._steps)
        return step, self._pipeline.batch(step)

    def close(self, timeout: float = 0.0) -> None:
        self._steps = iter(())

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


def _step_range(start_step: int, num_steps: int | None):
    start = _check_int(start_step, "start_step", "must be a non-negative integer", 0)
    if num_steps is None:
        return _count(start)
    num = _check_int(num_steps, "num_steps", "must be a non-negative integer or None", 0)
    return range(start, start + num)


def _count(start: int):
    step = start
    while True:
        yield step
        step += 1


def iterate(pipeline, start_step: int = 0, num_steps: int | None = None, prefetch: int = 2):
    """Yields (step, pipeline.batch(step)) for consecutive steps, loading ahead.

    Args:
      pipeline: anything with ``batch(step) -> dict`` (normally a Pipeline).
      start_step: first step (e.g. the step restored from a checkpoint).
      num_steps: how many steps to yield; None = forever.
      prefetch: batches loaded ahead in a background thread; 0 loads
        synchronously in the caller's thread (handy for debugging).

    Returns:
      An iterator (PrefetchIterator, or a synchronous equivalent for
      prefetch=0) with ``close()`` and context-manager support.
    """
    prefetch = _check_int(prefetch, "prefetch", "must be a non-negative integer", 0)
    if prefetch == 0:
        return _SyncIterator(pipeline, start_step, num_steps)
    return PrefetchIterator(pipeline, start_step, num_steps, prefetch)
