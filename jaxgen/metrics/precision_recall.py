"""k-NN manifold metrics: precision/recall and density/coverage.

Each set's manifold is estimated as the union of balls around its points, ball i having
the radius of point i's k-th nearest neighbour within its own set (self excluded).

* Improved precision and recall (Kynkaanniemi, Karras, Laine, Lehtinen & Aila 2019,
  "Improved Precision and Recall Metric for Assessing Generative Models", k=3):
  precision = fraction of fake samples inside the real manifold; recall = fraction of
  real samples inside the fake manifold.
* Density and coverage (Naeem, Oh, Uh, Choi & Yoo 2020, "Reliable Fidelity and Diversity
  Metrics for Generative Models", k=5), both from real balls only:
  density = 1/(kM) sum_j #{real balls containing fake j} (expectation 1 when fake and
  real follow one distribution; it exceeds 1 where fakes crowd dense regions), coverage
  = fraction of real balls containing at least one fake (expectation
  1 - prod_{i=1..k} (N - i) / (N + M - i) for equal distributions, ~1 - 2^-k at M = N).

All pairwise distances are computed blockwise in JAX (float32, after centring both sets
on their pooled mean to reduce cancellation in ||a||^2 + ||b||^2 - 2 a.b): a block of
rows meets all columns at once, with rows per block chosen so a block holds at most
``max_block_elements`` distances. Memory is therefore bounded whatever the set sizes,
and the full N x M matrix never exists.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["PrecisionRecall", "DensityCoverage", "precision_recall", "density_coverage",
           "knn_radii"]

DEFAULT_MAX_BLOCK_ELEMENTS = 1 << 24  # 64 MiB of float32 distances per block


def _sq_dists(a, b):
    d2 = (jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2.0 * (a @ b.T))
    return jnp.maximum(d2, 0.0)  # rounding can make coincident points slightly negative


@functools.partial(jax.jit, static_argnames=("k",))
def _kth_smallest(a, b, k: int):
    return -jax.lax.top_k(-_sq_dists(a, b), k)[0][:, k - 1]


@jax.jit
def _ball_hits(a, b, radii2):
    """For rows a: (inside any ball of b?, how many balls of b contain it)."""
    inside = _sq_dists(a, b) <= radii2[None, :]
    return jnp.any(inside, axis=1), jnp.sum(inside, axis=1, dtype=jnp.int32)


@jax.jit
def _nearest(a, b):
    return jnp.min(_sq_dists(a, b), axis=1)


def _blocked(fn, rows: np.ndarray, num_cols: int, max_block_elements: int):
    """Applies fn(row_block) over blocks of rows and concatenates the outputs.

    A block has at most max_block_elements // num_cols rows; the last block is
    zero-padded to the same size (one compilation) and its outputs cut back.
    """
    block = int(max(1, min(rows.shape[0], max_block_elements // max(1, num_cols))))
    outs = []
    for start in range(0, rows.shape[0], block):
        part = rows[start:start + block]
        n = part.shape[0]
        if n < block:
            part = np.concatenate([part, np.zeros((block - n,) + part.shape[1:], part.dtype)])
        out = fn(jnp.asarray(part))
        outs.append(jax.tree.map(lambda o, n=n: np.asarray(o)[:n], out))
    return jax.tree.map(lambda *o: np.concatenate(o), *outs)


def _prepare(real, fake):
    real, fake = np.asarray(real), np.asarray(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake must be (N, D) and (M, D) with one D, got "
                         f"{real.shape} and {fake.shape}")
    if not (np.all(np.isfinite(real)) and np.all(np.isfinite(fake))):
        raise ValueError("features contain NaN or inf")
    shift = np.concatenate([real, fake]).astype(np.float64).mean(axis=0)
    return (real - shift).astype(np.float32), (fake - shift).astype(np.float32)


def knn_radii(x, k: int, *, max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS) -> np.ndarray:
    """Squared distance from each row of x to its k-th nearest other row.

    Args:
      x: (N, D) float32, N > k.
      k: neighbour rank (1 = nearest).

    Returns:
      float32 (N,). Duplicated rows count as neighbours at distance 0.
    """
    x = np.asarray(x, np.float32)
    if not 1 <= k < x.shape[0]:
        raise ValueError(f"k must be in [1, N-1] = [1, {x.shape[0] - 1}], got {k}")
    xd = jnp.asarray(x)
    # The (k+1)-th smallest distance counts the point itself (distance 0) as the first.
    return _blocked(lambda a: _kth_smallest(a, xd, k + 1), x, len(x), max_block_elements)


@dataclasses.dataclass(frozen=True)
class PrecisionRecall:
    """Kynkaanniemi et al. 2019 precision and recall, with k and the set sizes."""

    precision: float
    recall: float
    k: int
    count_real: int
    count_fake: int
    description: str = ""


@dataclasses.dataclass(frozen=True)
class DensityCoverage:
    """Naeem et al. 2020 density and coverage, with k and the set sizes."""

    density: float
    coverage: float
    k: int
    count_real: int
    count_fake: int
    description: str = ""


def precision_recall(real, fake, *, k: int = 3, label_real: str = "real",
                     label_fake: str = "fake",
                     max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS) -> PrecisionRecall:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Args:
      real: reference features (N, D), N > k.
      fake: generated features (M, D), M > k.
      k: neighbour rank of the ball radii (the paper's default 3).
      label_real, label_fake: names used in ``description``.
      max_block_elements: distances held per block (memory bound).

    Returns:
      PrecisionRecall with values in [0, 1].
    """
    real, fake = _prepare(real, fake)
    r_real = jnp.asarray(knn_radii(real, k, max_block_elements=max_block_elements))
    r_fake = jnp.asarray(knn_radii(fake, k, max_block_elements=max_block_elements))
    real_d, fake_d = jnp.asarray(real), jnp.asarray(fake)
    in_real, _ = _blocked(lambda a: _ball_hits(a, real_d, r_real), fake, len(real),
                          max_block_elements)
    in_fake, _ = _blocked(lambda a: _ball_hits(a, fake_d, r_fake), real, len(fake),
                          max_block_elements)
    p, r = float(np.mean(in_real)), float(np.mean(in_fake))
    desc = (f"precision {p:.4f}, recall {r:.4f} (k={k}) of n={len(fake)} {label_fake} "
            f"against n={len(real)} {label_real}")
    return PrecisionRecall(p, r, k, len(real), len(fake), desc)


def density_coverage(real, fake, *, k: int = 5, label_real: str = "real",
                     label_fake: str = "fake",
                     max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS) -> DensityCoverage:
    """Density and coverage (Naeem et al. 2020).

    Args:
      real: reference features (N, D), N > k.
      fake: generated features (M, D).
      k: neighbour rank of the real ball radii (the paper's default 5).
      label_real, label_fake: names used in ``description``.
      max_block_elements: distances held per block (memory bound).

    Returns:
      DensityCoverage: density >= 0 (unbounded; ~1 for equal distributions), coverage in
      [0, 1].
    """
    real, fake = _prepare(real, fake)
    r_real = jnp.asarray(knn_radii(real, k, max_block_elements=max_block_elements))
    real_d, fake_d = jnp.asarray(real), jnp.asarray(fake)
    _, counts = _blocked(lambda a: _ball_hits(a, real_d, r_real), fake, len(real),
                         max_block_elements)
    nearest = _blocked(lambda a: _nearest(a, fake_d), real, len(fake), max_block_elements)
    density = float(np.sum(counts, dtype=np.int64)) / (k * len(fake))
    coverage = float(np.mean(nearest <= np.asarray(r_real)))
    desc = (f"density {density:.4f}, coverage {coverage:.4f} (k={k}) of n={len(fake)} "
            f"{label_fake} against n={len(real)} {label_real}")
    return DensityCoverage(density, coverage, k, len(real), len(fake), desc)
