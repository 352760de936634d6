"""Kernel Inception Distance (KID): unbiased MMD^2 with a cubic polynomial kernel.

Binkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD GANs" (ICLR):

  KID = MMD_u^2(X, Y) with k(x, y) = (x . y / d + 1)^3,

estimated by the unbiased U-statistic (Gretton et al. 2012, Eq. 3)

  1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
    - 2/(mn) sum_{i, j} k(x_i, y_j).

Unlike FD, its expectation does not depend on the sample size, so values at different n
compare (their spread does not). It is reported as mean and standard deviation over
random subsets (100 subsets of 1000 is the usual default); the subsets overlap, so that
standard deviation describes the spread of one subset's estimate, not the standard
error of the mean. Computed on the host in float64.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["KIDResult", "kid", "polynomial_kernel", "mmd2_unbiased"]


def polynomial_kernel(x, y, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """k(x, y) = (x . y / d + coef0)^degree for x (m, d), y (n, d) -> (m, n) float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x, y, degree: int = 3, coef0: float = 1.0) -> float:
    """The unbiased MMD^2 U-statistic with the polynomial kernel.

    Args:
      x: (m, d), m >= 2.
      y: (n, d), n >= 2.

    Returns:
      A float with expectation MMD^2(P, Q) (0 when P = Q; then it can be negative).
    """
    m, n = x.shape[0], y.shape[0]
    kxx = polynomial_kernel(x, x, degree, coef0)
    kyy = polynomial_kernel(y, y, degree, coef0)
    kxy = polynomial_kernel(x, y, degree, coef0)
    # Dropping the diagonal k(x_i, x_i) is what makes the estimate unbiased.
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


@dataclasses.dataclass(frozen=True)
class KIDResult:
    """KID over subsets.

    Attributes:
      mean: mean of the per-subset unbiased MMD^2; ``float(result)`` gives it.
      std: standard deviation (ddof=1) of the per-subset values; NaN when there is one
        subset, or when every subset is the whole of both sets.
      num_subsets, subset_size: how it was computed.
      count_x, count_y: sizes of the full sets the subsets were drawn from.
      description: what was compared, with counts.
    """

    mean: float
    std: float
    num_subsets: int
    subset_size: int
    count_x: int
    count_y: int
    description: str = ""

    def __float__(self) -> float:
        return float(self.mean)


def kid(x, y, *, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        label_x: str = "x", label_y: str = "y") -> KIDResult:
    """Kernel Inception Distance between feature sets x and y (Binkowski et al. 2018).

    Each subset draws min(subset_size, len(x), len(y)) rows of x and, independently, as
    many rows of y, without replacement, from ``np.random.default_rng(seed)``. When that
    size is the whole of both sets, every subset would be the same pair of sets: the
    statistic is computed once and ``std`` is NaN (there is no spread to report; use a
    subset size below the set sizes for one).

    Args:
      x: features (m, d), e.g. of generated samples.
      y: features (n, d), e.g. of reference data.
      num_subsets: number of subsets averaged.
      subset_size: rows per subset.
      seed: seed of the subset draws (the metric is deterministic given it).
      label_x, label_y: names used in ``description``.

    Returns:
      KIDResult (mean, std over subsets, counts).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (m, d) and (n, d) with one d, got {x.shape}, {y.shape}")
    if num_subsets < 1 or subset_size < 2:
        raise ValueError(f"need num_subsets >= 1 and subset_size >= 2, got {num_subsets}, "
                         f"{subset_size}")
    size = min(subset_size, x.shape[0], y.shape[0])
    if size < 2:
        raise ValueError(f"need at least 2 rows in x and y, got {x.shape[0]} and {y.shape[0]}")
    if size == x.shape[0] == y.shape[0]:
        num_subsets = 1  # every draw would be the whole of both sets
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for s in range(num_subsets):
        xs = x[rng.choice(x.shape[0], size, replace=False)]
        ys = y[rng.choice(y.shape[0], size, replace=False)]
        values[s] = mmd2_unbiased(xs, ys)
    std = float(values.std(ddof=1)) if num_subsets > 1 else float("nan")
    mean = float(values.mean())
    spread = (f"+- {std:.2g} (std over {num_subsets} subsets of {size})" if num_subsets > 1
              else f"(one subset of {size})")
    desc = (f"KID {mean:.6g} {spread} between "
            f"n={x.shape[0]} {label_x} and n={y.shape[0]} {label_y}")
    return KIDResult(mean, std, num_subsets, size, x.shape[0], y.shape[0], desc)
