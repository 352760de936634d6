"""Tests for the deterministic pipeline and the prefetch iterator."""

import threading
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgen.data import pipeline as pl
from jaxgen.data import sources, toy
from jaxgen.errors import ConfigError


def make_array_source(n=40, shape=(4, 6, 3)):
    """Random asymmetric images whose label is the example index (identifies it)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n,) + shape, dtype=np.uint8)
    return sources.ArraySource(images, np.arange(n), num_classes=n, name="fake")


class ListSource:
    """A source with only __len__/__getitem__ (no get_batch, not in memory)."""

    def __init__(self, arr_src):
        self._src = arr_src
        self.image_shape, self.num_classes, self.name = arr_src.image_shape, arr_src.num_classes, "list"

    def __len__(self):
        return len(self._src)

    def __getitem__(self, i):
        return self._src[i]


def labels_of(p, steps):
    return np.concatenate([p.batch(s)["label"] for s in steps])


# --- preprocess ------------------------------------------------------------


def test_preprocess_range_and_flip():
    imgs = np.array([[[[0], [255]], [[127], [128]]]] * 3, dtype=np.uint8)  # (3, 2, 2, 1)
    x = pl.preprocess(imgs)
    assert x.dtype == np.float32 and x.shape == imgs.shape
    np.testing.assert_allclose(x[0, :, :, 0], [[-1.0, 1.0], [127 / 127.5 - 1, 128 / 127.5 - 1]], atol=1e-6)
    f = pl.preprocess(imgs, flip_mask=np.array([False, True, False]))
    np.testing.assert_array_equal(f[[0, 2]], x[[0, 2]])
    np.testing.assert_array_equal(f[1], x[1][:, ::-1])
    with pytest.raises(ValueError, match="uint8"):
        pl.preprocess(imgs.astype(np.float32))


# --- determinism, epochs, resumption ------------------------------------------


@pytest.mark.parametrize("make", [lambda s: s, ListSource], ids=["array", "list"])
def test_batches_deterministic_dtype_range(make):
    src = make(make_array_source())
    p = pl.Pipeline(src, 8, seed=1, random_flip=True, process_index=0, process_count=1)
    b = p.batch(3)
    assert b["x"].shape == (8, 4, 6, 3) and b["x"].dtype == np.float32
    assert b["label"].shape == (8,) and b["label"].dtype == np.int32
    assert b["x"].min() >= -1.0 and b["x"].max() <= 1.0
    assert p.element_shape == (4, 6, 3) and p.num_classes == 40 and p.num_examples == 40
    q = pl.Pipeline(src, 8, seed=1, random_flip=True, process_index=0, process_count=1)
    for s in [3, 0, 17]:
        np.testing.assert_array_equal(p.batch(s)["x"], q.batch(s)["x"])
        np.testing.assert_array_equal(p.batch(s)["label"], q.batch(s)["label"])
    other = pl.Pipeline(src, 8, seed=2, process_index=0, process_count=1)
    assert not np.array_equal(labels_of(p, range(5)), labels_of(other, range(5)))


def test_in_memory_fast_path_equals_generic_path():
    src = make_array_source()
    fast = pl.Pipeline(src, 8, seed=4, random_flip=True, process_index=0, process_count=1)
    slow = pl.Pipeline(ListSource(src), 8, seed=4, random_flip=True, process_index=0, process_count=1)
    assert fast._dense is not None and slow._dense is None
    for s in range(7):
        np.testing.assert_array_equal(fast.batch(s)["x"], slow.batch(s)["x"])


def test_resume_equals_uninterrupted_run():
    src = make_array_source(n=37)  # N not divisible by B: batches straddle epochs
    run = pl.Pipeline(src, 8, seed=0, random_flip=True, process_index=0, process_count=1)
    history = [run.batch(s) for s in range(12)]
    resumed = pl.Pipeline(src, 8, seed=0, random_flip=True, process_index=0, process_count=1)
    for k in [9, 4, 11]:
        np.testing.assert_array_equal(resumed.batch(k)["x"], history[k]["x"])
        np.testing.assert_array_equal(resumed.batch(k)["label"], history[k]["label"])


def test_each_epoch_is_a_fresh_permutation():
    n, b = 40, 8
    p = pl.Pipeline(make_array_source(n), b, seed=5, process_index=0, process_count=1)
    epoch0, epoch1 = labels_of(p, range(0, 5)), labels_of(p, range(5, 10))
    np.testing.assert_array_equal(np.sort(epoch0), np.arange(n))
    np.testing.assert_array_equal(np.sort(epoch1), np.arange(n))
    assert not np.array_equal(epoch0, epoch1)
    assert not np.array_equal(epoch0, np.arange(n))  # actually shuffled


def test_batch_straddling_epochs_and_batch_larger_than_dataset():
    n = 10
    p = pl.Pipeline(make_array_source(n), 4, seed=2, process_index=0, process_count=1)
    stream = labels_of(p, range(5))  # 20 positions = exactly 2 epochs
    np.testing.assert_array_equal(stream[:10], pl.epoch_permutation(2, 0, n))
    np.testing.assert_array_equal(stream[10:], pl.epoch_permutation(2, 1, n))
    big = pl.Pipeline(make_array_source(n), 25, seed=2, process_index=0, process_count=1)
    np.testing.assert_array_equal(big.batch(0)["label"][:20], stream)


def test_epoch_permutation_is_pure():
    a = pl.epoch_permutation(3, 7, 1000)
    np.testing.assert_array_equal(np.sort(a), np.arange(1000))
    np.testing.assert_array_equal(a, pl.epoch_permutation(3, 7, 1000))
    assert not np.array_equal(a, pl.epoch_permutation(3, 8, 1000))
    assert not np.array_equal(a, pl.epoch_permutation(4, 7, 1000))


# --- processes and flips ---------------------------------------------------------


@pytest.mark.parametrize("random_flip", [False, True])
def test_process_slices_concatenate_to_global_batch(random_flip):
    src = make_array_source(n=37)
    single = pl.Pipeline(src, 16, seed=9, random_flip=random_flip, process_index=0, process_count=1)
    for count in [1, 2, 4]:
        parts = [
            pl.Pipeline(src, 16, seed=9, random_flip=random_flip, process_index=i, process_count=count)
            for i in range(count)
        ]
        assert all(q.local_batch_size == 16 // count for q in parts)
        for step in [0, 2, 5]:
            ref = single.batch(step)
            got = [q.batch(step) for q in parts]
            np.testing.assert_array_equal(np.concatenate([g["x"] for g in got]), ref["x"])
            np.testing.assert_array_equal(np.concatenate([g["label"] for g in got]), ref["label"])


def test_flip_only_changes_flipped_examples():
    src = make_array_source(n=64)
    plain = pl.Pipeline(src, 64, seed=3, random_flip=False, process_index=0, process_count=1)
    flip = pl.Pipeline(src, 64, seed=3, random_flip=True, process_index=0, process_count=1)
    a, b = plain.batch(0), flip.batch(0)
    np.testing.assert_array_equal(a["label"], b["label"])  # same order, flip is the only change
    mask = flip.flip_mask(flip.global_positions(0))
    assert 10 < mask.sum() < 54
    np.testing.assert_array_equal(b["x"][~mask], a["x"][~mask])
    np.testing.assert_array_equal(b["x"][mask], a["x"][mask][:, :, ::-1])
    assert not np.array_equal(b["x"][mask], a["x"][mask])  # images are not symmetric
    # Same example, different epoch: the flip is re-drawn (keyed by position).
    many = flip.flip_mask(np.arange(100_000))
    assert abs(many.mean() - 0.5) < 0.01
    assert not np.array_equal(flip.flip_mask(np.arange(64)), flip.flip_mask(np.arange(64, 128)))


def test_flip_mask_independent_of_process_count():
    src = make_array_source()
    ref = pl.Pipeline(src, 16, seed=3, random_flip=True, process_index=0, process_count=1)
    q = pl.Pipeline(src, 16, seed=3, random_flip=True, process_index=3, process_count=4)
    pos = q.local_positions(2)
    np.testing.assert_array_equal(pos, ref.global_positions(2)[12:16])
    np.testing.assert_array_equal(q.flip_mask(pos), ref.flip_mask(ref.global_positions(2))[12:16])


# --- toy data --------------------------------------------------------------------


def test_toy_pipeline_matches_sampler_and_process_split():
    src = toy.ToySource("8gaussians")
    single = pl.Pipeline(src, 12, seed=4, process_index=0, process_count=1)
    b = single.batch(5)
    assert set(b) == {"x"} and b["x"].shape == (12, 2) and b["x"].dtype == np.float32
    assert single.is_toy and single.element_shape == (2,)
    np.testing.assert_array_equal(b["x"], toy.sample("8gaussians", 4, 12, start=60))
    for count in [2, 4]:
        parts = [pl.Pipeline(src, 12, seed=4, process_index=i, process_count=count).batch(5) for i in range(count)]
        np.testing.assert_array_equal(np.concatenate([g["x"] for g in parts]), b["x"])
    assert not np.array_equal(single.batch(6)["x"], b["x"])
    with pytest.raises(ConfigError, match="random_flip"):
        pl.Pipeline(src, 12, seed=4, random_flip=True, process_index=0, process_count=1)


# --- validation ------------------------------------------------------------------


@pytest.mark.parametrize("bs,count", [(0, 1), (-8, 1), (6, 4), (8.0, 1), (True, 1)])
def test_bad_batch_size(bs, count):
    with pytest.raises(ConfigError, match=r"train\.batch_size=.*divisible by the process count"):
        pl.Pipeline(make_array_source(), bs, seed=0, process_index=0, process_count=count)


def test_bad_process_index_and_step():
    with pytest.raises(ConfigError, match="process_index"):
        pl.Pipeline(make_array_source(), 8, seed=0, process_index=2, process_count=2)
    p = pl.Pipeline(make_array_source(), 8, seed=0, process_index=0, process_count=1)
    with pytest.raises(ConfigError, match="step"):
        p.batch(-1)


def test_default_process_slot_comes_from_jax():
    p = pl.Pipeline(make_array_source(), 8, seed=0)
    assert (p.process_index, p.process_count) == (0, 1)


def test_tfds_mock_pipeline():
    with tfds.testing.mock_data(num_examples=20):
        src = sources.make_source("mnist", "train")
        p = pl.Pipeline(src, 8, seed=0, random_flip=True, process_index=1, process_count=2)
        b = p.batch(3)
        assert b["x"].shape == (4, 28, 28, 1) and b["x"].dtype == np.float32
        idx = p.example_indices(p.local_positions(3))
        ref = pl.preprocess(np.stack([src[int(i)]["image"] for i in idx]), p.flip_mask(p.local_positions(3)))
        np.testing.assert_array_equal(b["x"], ref)
        np.testing.assert_array_equal(b["label"], [src[int(i)]["label"] for i in idx])


# --- prefetching -----------------------------------------------------------------


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_iterate_matches_direct_calls(prefetch):
    p = pl.Pipeline(make_array_source(), 8, seed=0, random_flip=True, process_index=0, process_count=1)
    got = list(pl.iterate(p, start_step=4, num_steps=6, prefetch=prefetch))
    assert [s for s, _ in got] == list(range(4, 10))
    for s, b in got:
        np.testing.assert_array_equal(b["x"], p.batch(s)["x"])
        np.testing.assert_array_equal(b["label"], p.batch(s)["label"])


class Exploding:
    def __init__(self, bad_step):
        self.bad_step = bad_step
        self.calls = []

    def batch(self, step):
        self.calls.append(step)
        if step == self.bad_step:
            raise KeyError(f"boom at {step}")
        return {"step": step}


def test_iterate_propagates_exceptions():
    it = pl.iterate(Exploding(bad_step=2), 0, 10, prefetch=2)
    assert next(it)[0] == 0 and next(it)[0] == 1
    with pytest.raises(KeyError, match="boom at 2"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)
    it.thread.join(timeout=2)
    assert not it.thread.is_alive()


def test_iterate_early_exit_stops_thread():
    src = Exploding(bad_step=-1)
    with pl.iterate(src, 0, None, prefetch=2) as it:  # infinite
        for step, _ in it:
            if step == 3:
                break
    it.thread.join(timeout=2)
    assert not it.thread.is_alive()
    # It prefetched a bounded number of steps ahead, not the infinite stream.
    assert max(src.calls) <= 3 + 2 + 1


def test_iterate_prefetches_in_background():
    class Slow:
        def batch(self, step):
            time.sleep(0.1)
            return {"step": step, "thread": threading.current_thread().name}

    it = pl.iterate(Slow(), 0, 4, prefetch=2)
    time.sleep(0.5)  # the loader works while the consumer is busy elsewhere
    t0 = time.perf_counter()
    first = [next(it), next(it)]
    assert time.perf_counter() - t0 < 0.08  # loading them now would take >= 0.2 s
    assert all(b["thread"] == "jaxgen-prefetch" for _, b in first)
    assert [s for s, _ in it] == [2, 3]
