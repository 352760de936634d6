"""Metrics for low-dimensional (toy) data: sliced Wasserstein distance, mode coverage.

Both run on the host in float64 numpy: toy sets are small and the answers exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["sliced_wasserstein", "wasserstein_1d", "ModeCoverage", "mode_coverage",
           "toy_mode_coverage"]


def wasserstein_1d(x, y, p: float = 2.0) -> np.ndarray:
    """Exact W_p^p between empirical 1-D distributions, batched over leading axes.

    W_p^p = int_0^1 |F^{-1}(u) - G^{-1}(u)|^p du with the empirical quantile functions,
    which are step functions with steps at multiples of 1/n and 1/m; the integral is an
    exact sum over the merged steps, so n != m needs no resampling.

    Args:
      x: (..., n) samples; y: (..., m) samples (same leading axes).
      p: exponent >= 1.

    Returns:
      W_p^p, shape (...).
    """
    x, y = np.sort(np.asarray(x, np.float64), -1), np.sort(np.asarray(y, np.float64), -1)
    n, m = x.shape[-1], y.shape[-1]
    # The quantile levels where either step function jumps; on each interval between
    # consecutive levels both quantile functions are constant.
    levels = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    widths = np.diff(levels, prepend=0.0)
    mids = levels - widths / 2
    ix = np.minimum((mids * n).astype(np.int64), n - 1)
    iy = np.minimum((mids * m).astype(np.int64), m - 1)
    return np.sum(widths * np.abs(x[..., ix] - y[..., iy]) ** p, axis=-1)


def sliced_wasserstein(x, y, *, num_projections: int = 256, p: float = 2.0,
                       seed: int = 0) -> float:
    """Monte Carlo sliced Wasserstein distance SW_p (Rabin et al. 2011; Bonneel et al. 2015).

    SW_p(P, Q) = (E_theta W_p^p(theta . P, theta . Q))^{1/p} with theta uniform on the unit
    sphere, estimated with ``num_projections`` directions from
    ``np.random.default_rng(seed)`` (so the value is deterministic). For N(0, I) against
    N(delta, I) in D dimensions, SW_2 = ||delta|| / sqrt(D) plus sampling error.

    Args:
      x: (n, D) samples; y: (m, D) samples.
      num_projections: directions averaged.
      p: exponent >= 1.
      seed: seed of the directions.

    Returns:
      SW_p in the units of x.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 1:
        raise ValueError(f"x and y must be non-empty (n, D) and (m, D), got {x.shape}, {y.shape}")
    theta = np.random.default_rng(seed).standard_normal((num_projections, x.shape[1]))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    return float(np.mean(wasserstein_1d(theta @ x.T, theta @ y.T, p)) ** (1.0 / p))


@dataclasses.dataclass(frozen=True)
class ModeCoverage:
    """Mode statistics of samples from a model of a mixture with known centres.

    Attributes:
      modes_covered: modes with at least ``min_count`` high-quality samples.
      num_modes: K.
      high_quality_fraction: fraction of samples within ``num_std`` stds of their
        nearest mode.
      counts: int (K,) high-quality samples per mode.
      kl_to_weights: KL(h || w) of the high-quality samples' mode histogram h against the
        mixture weights w (0 for a perfectly balanced model; inf if none is
        high quality). It exposes unbalanced mode weights that the count hides.
      num_samples, num_std, min_count: how it was computed.
      description: one line with all of the above.
    """

    modes_covered: int
    num_modes: int
    high_quality_fraction: float
    counts: np.ndarray
    kl_to_weights: float
    num_samples: int
    num_std: float
    min_count: int
    description: str = ""


def mode_coverage(samples, centers, stds, *, weights=None, num_std: float = 3.0,
                  min_count: int = 1) -> ModeCoverage:
    """Modes covered and the fraction of high-quality samples.

    The convention of VEEGAN (Srivastava et al. 2017) on the 2-D ring and grid
    mixtures introduced for this purpose by Metz et al. 2017 (unrolled GANs): a sample is
    high quality if it lies within three standard deviations of the nearest mode centre;
    a mode is captured if high-quality samples fall to it. ``min_count`` > 1 gives the
    stricter variants of later work that demand several samples per captured mode.

    The count is only meaningful when the modes' 3-std discs are well apart (Metz et
    al.'s ring: radius 2, std 0.02). In jaxgen's '8gaussians' (std = radius / 8)
    neighbouring modes are 6.1 std apart, so ~0.1% of one mode's samples land within 3
    std of a neighbour; there use ``min_count`` of a few per cent of n / K.

    Args:
      samples: (n, D) model samples.
      centers: (K, D) mode centres.
      stds: scalar or (K,) isotropic standard deviation of each mode.
      weights: (K,) mixture weights (default uniform), only for ``kl_to_weights``.
      num_std: radius of a mode in its standard deviations.
      min_count: high-quality samples a mode needs to count as covered.

    Returns:
      ModeCoverage.
    """
    x = np.asarray(samples, np.float64)
    c = np.asarray(centers, np.float64)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1] or len(x) == 0:
        raise ValueError(f"samples (n, D) and centers (K, D) must share D, got {x.shape}, "
                         f"{c.shape}")
    k = c.shape[0]
    s = np.broadcast_to(np.asarray(stds, np.float64), (k,))
    if np.any(s <= 0):
        raise ValueError("stds must be positive")
    w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (k,) or np.any(w <= 0):
        raise ValueError(f"weights must be positive with shape ({k},), got {w}")
    w = w / w.sum()
    d2 = np.sum((x[:, None, :] - c[None, :, :]) ** 2, axis=-1)  # (n, K); toy sizes only
    nearest = np.argmin(d2, axis=1)
    good = d2[np.arange(len(x)), nearest] <= (num_std * s[nearest]) ** 2
    counts = np.bincount(nearest[good], minlength=k)
    covered = int(np.sum(counts >= min_count))
    hq = float(np.mean(good))
    if counts.sum() > 0:
        h = counts / counts.sum()
        nz = h > 0
        kl = float(np.sum(h[nz] * np.log(h[nz] / w[nz])))
    else:
        kl = float("inf")
    desc = (f"{covered}/{k} modes covered (>= {min_count} samples within {num_std:g} std), "
            f"{100 * hq:.1f}% high-quality, KL(modes || weights) {kl:.3f}, n={len(x)}")
    return ModeCoverage(covered, k, hq, counts, kl, len(x), float(num_std), int(min_count), desc)


def toy_mode_coverage(name: str, samples, **kwargs) -> ModeCoverage:
    """``mode_coverage`` against a jaxgen toy mixture ('8gaussians' or '25gaussians')."""
    from jaxgen.data import toy  # lazy: keeps this module numpy-only unless used

    if name not in toy.MIXTURES:
        raise ValueError(f"mode coverage needs a Gaussian mixture, one of {toy.MIXTURES}; "
                         f"got {name!r}")
    weights, means, stds = toy.mixture_params(name)
    return mode_coverage(samples, means, stds, weights=weights, **kwargs)
