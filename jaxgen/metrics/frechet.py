"""Gaussian feature statistics and the Frechet distance between them (FID-style).

The Frechet (2-Wasserstein) distance between N(m1, S1) and N(m2, S2) is

  FD = ||m1 - m2||^2 + tr(S1) + tr(S2) - 2 tr((S1^{1/2} S2 S1^{1/2})^{1/2})

(Dowson & Landau 1982; on InceptionV3 features it is the FID of Heusel et al. 2017). Statistics are accumulated on the host in float64 from batches of
features (Chan, Golub & LeVeque 1979 pairwise update), so any number of samples can be
streamed through in any batch size with memory O(D^2).

Every ``FeatureStats`` carries its sample count, the feature extractor's identifier
(name and content hash) and the dataset/split it came from, so a reported number can say
what it compares: FD is biased upwards at small n (Binkowski et al. 2018), and
values are only comparable at equal n and the same extractor.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Optional

import numpy as np

__all__ = ["FeatureStats", "StatsAccumulator", "FrechetResult", "frechet_distance",
           "gaussian_frechet_distance", "stats_from_features"]

_FORMAT = 1


# eq=False: == on arrays is ambiguous; compare checksum() instead.
@dataclasses.dataclass(frozen=True, eq=False)
class FeatureStats:
    """Mean and covariance of a set of feature vectors, with what they describe.

    Attributes:
      mean: float64 (D,).
      cov: float64 (D, D), the unbiased sample covariance (divides by count - 1, as
        ``np.cov``).
      count: number of feature vectors.
      extractor: the extractor identifier, ``name@hash`` (see FeatureExtractor.identifier).
      dataset: what the features came from, e.g. 'mnist' or 'samples:runs/rf_mnist'.
      split: the split or a free description, e.g. 'test[:50%]'.
    """

    mean: np.ndarray
    cov: np.ndarray
    count: int
    extractor: str = ""
    dataset: str = ""
    split: str = ""

    def __post_init__(self):
        mean = np.asarray(self.mean, np.float64)
        cov = np.asarray(self.cov, np.float64)
        if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
            raise ValueError(f"FeatureStats needs mean (D,) and cov (D, D), got {mean.shape} "
                             f"and {cov.shape}")
        if int(self.count) < 2:
            raise ValueError(f"FeatureStats needs count >= 2, got {self.count}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "count", int(self.count))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def describe(self) -> str:
        """E.g. 'n=5000 mnist test[:50%] (features classifier-mnist@0a1b2c3d4e5f)'."""
        what = " ".join(s for s in (self.dataset, self.split) if s) or "unnamed set"
        return f"n={self.count} {what} (features {self.extractor or 'unknown'})"

    def checksum(self) -> str:
        """sha256 of the float64 mean and covariance bytes (detects corrupted caches)."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.mean).tobytes())
        h.update(np.ascontiguousarray(self.cov).tobytes())
        return h.hexdigest()

    def metadata(self) -> dict:
        return {"format": _FORMAT, "count": self.count, "dim": self.dim,
                "extractor": self.extractor, "dataset": self.dataset, "split": self.split,
                "checksum": self.checksum()}

    def save(self, path: str) -> str:
        """Writes an .npz (mean, cov, JSON metadata) atomically; returns the path."""
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            np.savez(f, mean=self.mean, cov=self.cov,
                     metadata=np.array(json.dumps(self.metadata(), sort_keys=True)))
        os.replace(tmp, path)  # readers never see a half-written file
        return path

    @classmethod
    def load(cls, path: str) -> "FeatureStats":
        """Reads a file written by ``save`` and verifies it.

        Raises:
          ValueError: the file is not a stats file, or its arrays do not match the
            checksum, shapes and count recorded with them.
          OSError: the file cannot be read.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["metadata"]))
                mean, cov = z["mean"], z["cov"]
        except (KeyError, json.JSONDecodeError, EOFError) as e:
            raise ValueError(f"{path}: not a FeatureStats file ({e})") from None
        except Exception as e:  # noqa: BLE001 - zipfile/np raise many types on garbage
            if isinstance(e, OSError) and not os.path.exists(path):
                raise
            raise ValueError(f"{path}: unreadable FeatureStats file ({e})") from None
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: unknown stats format {meta.get('format')!r}")
        stats = cls(mean, cov, meta["count"], meta["extractor"], meta["dataset"], meta["split"])
        if stats.dim != meta["dim"] or stats.checksum() != meta["checksum"]:
            raise ValueError(f"{path}: arrays do not match their recorded checksum")
        return stats


class StatsAccumulator:
    """Streams feature batches into a float64 mean and covariance.

    Each batch's own mean and centred scatter matrix are merged into the running ones
    with the pairwise update of Chan et al. (1979): with n = n_a + n_b and
    delta = mean_b - mean_a,

      mean = mean_a + delta n_b / n,   M2 = M2_a + M2_b + delta delta^T n_a n_b / n.

    Unlike accumulating sum(x) and sum(x x^T), this never subtracts two large nearly
    equal numbers, so features with a large mean keep their covariance accurate.
    """

    def __init__(self):
        self.count = 0
        self._mean: Optional[np.ndarray] = None
        self._m2: Optional[np.ndarray] = None

    def update(self, features) -> "StatsAccumulator":
        """Adds a batch of features (B, D) (any float dtype; promoted to float64)."""
        x = np.asarray(features, np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must have shape (B, D), got {x.shape}")
        if self._mean is not None and x.shape[1] != self._mean.shape[0]:
            raise ValueError(f"feature size changed from {self._mean.shape[0]} to {x.shape[1]}")
        if not np.all(np.isfinite(x)):
            raise ValueError("features contain NaN or inf")
        nb = x.shape[0]
        if nb == 0:
            return self
        mean_b = x.mean(axis=0)
        xc = x - mean_b
        m2_b = xc.T @ xc
        if self._mean is None:
            self.count, self._mean, self._m2 = nb, mean_b, m2_b
            return self
        na, n = self.count, self.count + nb
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (nb / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (na * nb / n)
        self.count = n
        return self

    def result(self, extractor: str = "", dataset: str = "", split: str = "") -> FeatureStats:
        """The accumulated statistics (covariance divided by count - 1)."""
        if self.count < 2:
            raise ValueError(f"need at least 2 feature vectors, got {self.count}")
        cov = self._m2 / (self.count - 1)
        cov = 0.5 * (cov + cov.T)  # exactly symmetric (the sums are, up to rounding)
        return FeatureStats(self._mean.copy(), cov, self.count, extractor, dataset, split)


def stats_from_features(features, extractor: str = "", dataset: str = "",
                        split: str = "") -> FeatureStats:
    """One-shot FeatureStats of features (N, D)."""
    return StatsAccumulator().update(features).result(extractor, dataset, split)


@dataclasses.dataclass(frozen=True)
class FrechetResult:
    """A Frechet distance with its terms, numerical diagnostics and provenance.

    Attributes:
      value: the distance; ``float(result)`` gives it. Rounding can make it slightly
        negative (~1e-12 of tr(S1) + tr(S2)) for identical statistics.
      mean_term: ||m1 - m2||^2.
      trace_term: tr(S1) + tr(S2) - 2 tr((S1^{1/2} S2 S1^{1/2})^{1/2}).
      min_eigenvalue: the most negative eigenvalue, relative to the largest, of
        S1^{1/2} S2 S1^{1/2} before it was set to 0 (0.0 if none was negative). A PSD
        matrix has none: values ~1e-15 are rounding, anything far larger means the
        inputs were not covariance matrices.
      num_clipped: how many eigenvalues (of S1 and of S1^{1/2} S2 S1^{1/2}) were at or
        below the noise level D * eps * max|eigenvalue| and set to 0; nonzero for
        rank-deficient covariances (e.g. fewer samples than dimensions).
      sqrt_residual: ||R R - A||_F / ||A||_F for the square root R computed of
        A = S1^{1/2} S2 S1^{1/2}: how far the square root is from exact.
      count_a, count_b: sample counts (0 when the inputs were bare arrays).
      description: what was compared, with counts and extractor.
    """

    value: float
    mean_term: float
    trace_term: float
    min_eigenvalue: float
    num_clipped: int
    sqrt_residual: float
    count_a: int = 0
    count_b: int = 0
    description: str = ""

    def __float__(self) -> float:
        return float(self.value)


def _psd_eig(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """eigh of a symmetric PSD matrix with rounding noise removed.

    Returns (raw eigenvalues, eigenvalues with those below D * eps * max|eigenvalue| set
    to 0, eigenvectors, how many were zeroed). Computed eigenvalues of a PSD matrix carry
    absolute errors ~eps * ||a||, so smaller ones (negative ones included) are noise; their
    square roots, ~sqrt(eps) relative each, would otherwise add up to a ~1e-8 relative
    error in FD for singular covariances.
    """
    w, v = np.linalg.eigh(0.5 * (a + a.T))
    tol = a.shape[0] * np.finfo(np.float64).eps * max(float(np.max(np.abs(w))), 0.0)
    kept = np.where(w > tol, w, 0.0)
    return w, kept, v, int(np.sum(w <= tol))


def gaussian_frechet_distance(mu1, cov1, mu2, cov2) -> FrechetResult:
    """Frechet distance between N(mu1, cov1) and N(mu2, cov2), in float64.

    The trace of the matrix square root is computed from the symmetric form
    A = S1^{1/2} S2 S1^{1/2}: both roots are taken with ``np.linalg.eigh`` of symmetric
    PSD matrices, whose eigenvalues are real. The common alternative, ``sqrtm(S1 @ S2)``
    of a non-symmetric matrix, returns complex values from rounding and fails on
    singular covariances (e.g. fewer samples than dimensions), where implementations add
    eps * I to both covariances and drop the imaginary part. Here nothing is added to
    the covariances: eigenvalues at the rounding-noise level D * eps * max|eigenvalue|
    (negative ones included) are set to 0 and counted (``num_clipped``, with the most
    negative one in ``min_eigenvalue``), so rank-deficient covariances need no special
    case (the distance of a singular covariance to itself is 0 to ~1e-13 relative).

    Args:
      mu1, mu2: means (D,).
      cov1, cov2: covariances (D, D), symmetric positive semi-definite.

    Returns:
      FrechetResult (no provenance; ``frechet_distance`` adds it for FeatureStats).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.shape != (d,) or mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"need means (D,) and covariances (D, D) of one D, got {mu1.shape}, "
                         f"{cov1.shape}, {mu2.shape}, {cov2.shape}")
    for name, a in (("mu1", mu1), ("cov1", cov1), ("mu2", mu2), ("cov2", cov2)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf")
    _, w1, v1, clipped1 = _psd_eig(cov1)
    root1 = (v1 * np.sqrt(w1)) @ v1.T
    inner = root1 @ (0.5 * (cov2 + cov2.T)) @ root1
    w_raw, w, v, clipped2 = _psd_eig(inner)
    scale = max(float(np.max(np.abs(w_raw))), np.finfo(np.float64).tiny)
    min_eig = min(float(np.min(w_raw)), 0.0) / scale
    root = (v * np.sqrt(w)) @ v.T
    norm = max(float(np.linalg.norm(inner)), np.finfo(np.float64).tiny)
    residual = float(np.linalg.norm(root @ root - inner)) / norm
    tr_sqrt = float(np.sum(np.sqrt(w)))
    diff = mu1 - mu2
    mean_term = float(diff @ diff)
    trace_term = float(np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt)
    return FrechetResult(value=mean_term + trace_term, mean_term=mean_term,
                         trace_term=trace_term, min_eigenvalue=min_eig,
                         num_clipped=clipped1 + clipped2, sqrt_residual=residual)


def frechet_distance(a: FeatureStats, b: FeatureStats, *,
                     allow_mixed_extractors: bool = False) -> FrechetResult:
    """Frechet distance between two FeatureStats, stating counts and references.

    Args:
      a: statistics of one set (e.g. generated samples).
      b: statistics of the other (e.g. the reference data).
      allow_mixed_extractors: distances between features of different extractors are
        meaningless, so differing ``extractor`` fields raise unless this is True.

    Returns:
      FrechetResult whose ``description`` reads e.g.
      'FD 1.234 between n=5000 ... and n=5000 ...'.
    """
    if not isinstance(a, FeatureStats) or not isinstance(b, FeatureStats):
        raise ValueError("frechet_distance takes two FeatureStats; use "
                         "gaussian_frechet_distance for bare arrays")
    if a.extractor != b.extractor and not allow_mixed_extractors:
        raise ValueError(f"the statistics come from different feature extractors "
                         f"({a.extractor!r} vs {b.extractor!r})")
    r = gaussian_frechet_distance(a.mean, a.cov, b.mean, b.cov)
    desc = f"FD {r.value:.6g} between {a.describe()} and {b.describe()}"
    return dataclasses.replace(r, count_a=a.count, count_b=b.count, description=desc)
