"""2-D toy distributions for quick generative-model experiments.

Every sampler is a pure function of ``(seed, example position)``: example ``p``
of ``sample(name, seed, n, start)`` is built from a counter-based hash of
``(seed, p)`` (see :func:`hash_u64`), never from a stateful generator. This is
what lets the data pipeline hand each process just its own slice of a global
batch while producing bit-identical data for any process count, and lets a
resumed run regenerate exactly the samples it would have seen. We use numpy
(not ``jax.random``) because data loading runs on the host, often in a
background thread, and must not compete with the accelerator for dispatch.

Scale convention: every distribution is centred (mean 0) and scaled so that
``E||x||^2 = 2``, i.e. the per-coordinate variance is 1 on average. For the
isotropic ones ('8gaussians', '25gaussians', 'rings', 'checkerboard') each
coordinate has exactly unit standard deviation; 'moons' and 'swissroll' are
scaled isotropically (to keep their shape), so their two coordinates have
standard deviations of roughly (1.22, 0.71) and (0.98, 1.02) respectively.

Closed-form densities (:func:`log_prob`) exist for the Gaussian mixtures and
the checkerboard; :func:`mixture_params` exposes the exact mixture so other
code can build exact denoisers / scores for the mixtures.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from jaxgen.errors import DataError

__all__ = [
    "TOY_DISTRIBUTIONS",
    "MIXTURES",
    "HAS_LOG_PROB",
    "ToySource",
    "sample",
    "sample_at",
    "log_prob",
    "mixture_params",
    "hash_u64",
    "hash_uniform",
]

TOY_DISTRIBUTIONS = ("8gaussians", "25gaussians", "rings", "moons", "swissroll", "checkerboard")
MIXTURES = ("8gaussians", "25gaussians")
HAS_LOG_PROB = MIXTURES + ("checkerboard",)

# ---------------------------------------------------------------------------
# Counter-based hashing (splitmix64 finaliser).
# ---------------------------------------------------------------------------

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MUL1 = _U64(0xBF58476D1CE4E5B9)
_MUL2 = _U64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1

# Distinct key words so the toy samplers, the epoch permutations and the flip
# decisions of the pipeline draw from unrelated streams for the same seed.
TOY_TAG = 0x70F
PERM_TAG = 0x9E4
FLIP_TAG = 0xF11


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, a bijection on uint64 with good avalanche."""
    # uint64 arithmetic on arrays wraps modulo 2**64, which is what we want.
    x = x + _GOLDEN
    x = (x ^ (x >> _U64(30))) * _MUL1
    x = (x ^ (x >> _U64(27))) * _MUL2
    return x ^ (x >> _U64(31))


def _key(words) -> np.ndarray:
    """Folds integer key words into one uint64 (as a 1-element array)."""
    k = np.zeros(1, dtype=np.uint64)
    for w in words:
        k = _mix64(k ^ np.array([int(w) & _MASK64], dtype=np.uint64))
    return k


def hash_u64(counters, *key) -> np.ndarray:
    """Hashes non-negative integer counters under an integer key.

    Args:
      counters: int array-like of any shape (e.g. global example positions).
      *key: Python ints (seed, stream tags, epoch, ...).

    Returns:
      uint64 array shaped like ``counters``. For a fixed key the map
      counter -> hash is injective (a composition of bijections), and the
      outputs look independent and uniform over 64 bits.
    """
    c = np.asarray(counters).astype(np.uint64)
    return _mix64(_key(key) ^ _mix64(c))


def hash_uniform(counters, *key) -> np.ndarray:
    """Uniform float64 variates in the open interval (0, 1), one per counter."""
    # Top 53 bits give every representable double of the form k * 2**-53;
    # the +0.5 keeps us strictly inside (0, 1) so log(u) is always finite.
    bits = hash_u64(counters, *key) >> _U64(11)
    return (bits.astype(np.float64) + 0.5) * (2.0 ** -53)


def _uniforms(seed: int, positions: np.ndarray, k: int) -> list[np.ndarray]:
    """k independent uniform streams for the given example positions."""
    return [hash_uniform(positions, seed, TOY_TAG, j) for j in range(k)]


def _normal_pair(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Box-Muller: two uniforms -> (n, 2) independent standard normals."""
    r = np.sqrt(-2.0 * np.log(u1))
    theta = 2.0 * np.pi * u2
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1)


# ---------------------------------------------------------------------------
# Distribution definitions.
# ---------------------------------------------------------------------------

# 8gaussians: the FFJORD layout (stds = radius / 8) with radius chosen so that
# each coordinate has unit variance: r^2 (1/2 + 1/64) = 1.
_R8 = 1.0 / math.sqrt(0.5 + 1.0 / 64.0)  # ~1.393
_S8 = _R8 / 8.0  # ~0.174

# 25gaussians: 5x5 grid with spacing s and stds s / 10; grid variance is 2 s^2
# per coordinate, so s^2 (2 + 1/100) = 1.
_S25 = 1.0 / math.sqrt(2.01)  # ~0.705
_STD25 = _S25 / 10.0

# rings: 4 equally likely circles of radius c, 2c, 3c, 4c with isotropic
# Gaussian noise c / 10: per-coordinate variance c^2 (7.5 / 2 + 1 / 100) = 1.
_RING_C = 1.0 / math.sqrt(3.76)  # ~0.516
_RING_STD = _RING_C / 10.0

# checkerboard: uniform on the 8 "even" cells of a 4x4 board on [-a, a]^2.
# Each coordinate is marginally uniform on [-a, a], variance a^2 / 3 = 1.
_CB_A = math.sqrt(3.0)
_CB_CELL = _CB_A / 2.0
_CB_LOG_DENSITY = -math.log(8 * _CB_CELL**2)  # density 1/6 on the support

# moons (sklearn layout) and swissroll: raw curves plus isotropic noise, then
# centred and isotropically scaled to E||x||^2 = 2 using exact moments.
_MOONS_NOISE = 0.1  # raw units; the moons have radius 1
_SWISS_NOISE = 0.5  # raw units; the roll's radius runs from 1.5 pi to 4.5 pi
_SWISS_T0, _SWISS_T1 = 1.5 * math.pi, 4.5 * math.pi


@functools.lru_cache(maxsize=None)
def _moons_affine() -> tuple[np.ndarray, float]:
    """(mean, scale) of raw moons, from closed-form moments over t ~ U[0, pi]."""
    # E[cos t] = 0, E[sin t] = 2/pi, E[cos^2] = E[sin^2] = 1/2 on [0, pi].
    mean = np.array([0.5, 0.25])
    var_x = 1.0 - 0.25
    var_y = (0.625 - 1.0 / math.pi) - 0.25**2
    scale = math.sqrt(2.0 / (var_x + var_y + 2.0 * _MOONS_NOISE**2))
    return mean, scale


@functools.lru_cache(maxsize=None)
def _swiss_affine() -> tuple[np.ndarray, float]:
    """(mean, scale) of the raw swiss roll (t cos t, t sin t), t ~ U[t0, t1]."""
    a, b = _SWISS_T0, _SWISS_T1
    length = b - a
    # Antiderivatives: int t cos t = t sin t + cos t; int t sin t = sin t - t cos t.
    mx = ((b * math.sin(b) + math.cos(b)) - (a * math.sin(a) + math.cos(a))) / length
    my = ((math.sin(b) - b * math.cos(b)) - (math.sin(a) - a * math.cos(a))) / length
    e_t2 = (b**3 - a**3) / (3.0 * length)
    total_var = e_t2 - (mx**2 + my**2) + 2.0 * _SWISS_NOISE**2
    return np.array([mx, my]), math.sqrt(2.0 / total_var)


def _check_name(name: str) -> None:
    if name not in TOY_DISTRIBUTIONS:
        raise DataError(
            f"unknown toy distribution {name!r}; available: {', '.join(TOY_DISTRIBUTIONS)}"
        )


def mixture_params(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact parameters of an isotropic Gaussian mixture distribution.

    Args:
      name: '8gaussians' or '25gaussians'.

    Returns:
      (weights (K,), means (K, 2), stds (K,)) as float64 arrays (fresh copies);
      component k is N(means[k], stds[k]^2 I) with probability weights[k].
    """
    _check_name(name)
    if name == "8gaussians":
        angles = 2.0 * np.pi * np.arange(8) / 8.0
        means = _R8 * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
        stds = np.full(8, _S8)
    elif name == "25gaussians":
        grid = _S25 * np.arange(-2, 3, dtype=np.float64)
        gx, gy = np.meshgrid(grid, grid, indexing="ij")
        means = np.stack([gx.ravel(), gy.ravel()], axis=-1)
        stds = np.full(25, _STD25)
    else:
        raise DataError(f"toy distribution {name!r} is not a Gaussian mixture; mixtures: {', '.join(MIXTURES)}")
    weights = np.full(len(stds), 1.0 / len(stds))
    return weights, means, stds


def sample_at(name: str, seed: int, positions) -> np.ndarray:
    """Samples one example per position; example p depends only on (seed, p).

    Args:
      name: one of TOY_DISTRIBUTIONS.
      seed: non-negative Python int.
      positions: int array-like (n,) of non-negative example positions.

    Returns:
      (n, 2) float32 array.
    """
    _check_name(name)
    pos = np.asarray(positions, dtype=np.int64).reshape(-1)
    if pos.size and pos.min() < 0:
        raise ValueError("example positions must be non-negative")
    u = _uniforms(int(seed), pos, 4)

    if name in MIXTURES:
        _, means, stds = mixture_params(name)
        k = len(stds)
        # min() guards the (measure-zero) case u * k rounding up to k.
        comp = np.minimum((u[0] * k).astype(np.int64), k - 1)
        x = means[comp] + stds[comp, None] * _normal_pair(u[1], u[2])
    elif name == "rings":
        ring = np.minimum((u[0] * 4).astype(np.int64), 3) + 1
        theta = 2.0 * np.pi * u[1]
        circle = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
        x = _RING_C * ring[:, None] * circle + _RING_STD * _normal_pair(u[2], u[3])
    elif name == "moons":
        t = np.pi * u[1]
        outer = np.stack([np.cos(t), np.sin(t)], axis=-1)
        inner = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=-1)
        raw = np.where((u[0] < 0.5)[:, None], outer, inner)
        raw = raw + _MOONS_NOISE * _normal_pair(u[2], u[3])
        mean, scale = _moons_affine()
        x = (raw - mean) * scale
    elif name == "swissroll":
        t = _SWISS_T0 + (_SWISS_T1 - _SWISS_T0) * u[0]
        raw = np.stack([t * np.cos(t), t * np.sin(t)], axis=-1)
        raw = raw + _SWISS_NOISE * _normal_pair(u[1], u[2])
        mean, scale = _swiss_affine()
        x = (raw - mean) * scale
    else:  # checkerboard
        cell = np.minimum((u[0] * 8).astype(np.int64), 7)
        row = cell // 2
        # Row i holds the filled columns {i % 2, i % 2 + 2}: cells with even i + j.
        col = row % 2 + 2 * (cell % 2)
        x = np.stack(
            [-_CB_A + (row + u[1]) * _CB_CELL, -_CB_A + (col + u[2]) * _CB_CELL], axis=-1
        )
    return x.astype(np.float32)


def sample(name: str, seed: int, n: int, start: int = 0) -> np.ndarray:
    """Draws examples at positions start .. start + n - 1 (see sample_at).

    ``sample(name, seed, n, start)`` equals ``sample(name, seed, start + n)[start:]``,
    so any contiguous chunk of an infinite stream can be regenerated alone.

    Args:
      name: one of TOY_DISTRIBUTIONS.
      seed: non-negative Python int.
      n: number of samples.
      start: position of the first sample.

    Returns:
      (n, 2) float32 array.
    """
    return sample_at(name, seed, np.arange(start, start + n, dtype=np.int64))


def log_prob(name: str, x) -> np.ndarray:
    """Exact log density for the distributions that have a closed form.

    Args:
      name: one of HAS_LOG_PROB ('8gaussians', '25gaussians', 'checkerboard').
      x: (n, 2) array-like of points.

    Returns:
      (n,) float64 log densities (-inf outside the checkerboard's support).
    """
    _check_name(name)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (n, 2), got {x.shape}")
    if name in MIXTURES:
        weights, means, stds = mixture_params(name)
        var = stds**2
        sq = np.sum((x[:, None, :] - means[None]) ** 2, axis=-1)  # (n, K)
        comp = np.log(weights) - sq / (2.0 * var) - np.log(2.0 * np.pi * var)
        top = comp.max(axis=1, keepdims=True)
        return (top + np.log(np.sum(np.exp(comp - top), axis=1, keepdims=True)))[:, 0]
    if name == "checkerboard":
        inside_box = np.all(np.abs(x) < _CB_A, axis=1)
        cells = np.floor((x + _CB_A) / _CB_CELL).astype(np.int64)
        even = (cells.sum(axis=1) % 2) == 0
        return np.where(inside_box & even, _CB_LOG_DENSITY, -np.inf)
    raise DataError(
        f"toy distribution {name!r} has no closed-form log_prob; available for: {', '.join(HAS_LOG_PROB)}"
    )


class ToySource:
    """An infinite 2-D toy distribution, as seen by the data pipeline.

    Not an image source: there is no length, labels or epochs; the example
    at global position p is ``sample_at(name, seed, [p])``.

    Attributes:
      name: the distribution name (without the 'toy:' prefix).
      dim: data dimensionality (2).
    """

    dim = 2

    def __init__(self, name: str):
        _check_name(name)
        self.name = name

    def sample_at(self, seed: int, positions) -> np.ndarray:
        """(n, 2) float32 samples for the given global example positions."""
        return sample_at(self.name, seed, positions)

    def __repr__(self) -> str:
        return f"ToySource({self.name!r})"
