"""Sample-quality metrics.

* ``distances``: energy distance and RBF MMD (jax, blocked).
* ``frechet``: streaming float64 Gaussian feature statistics (``FeatureStats``) and the
  Frechet distance between them.
* ``kid``: Kernel Inception Distance (unbiased MMD^2, cubic polynomial kernel).
* ``precision_recall``: k-NN precision/recall and density/coverage, blocked.
* ``lowdim``: sliced Wasserstein distance and mode coverage for toy data.
* ``features``: hashed feature extractors, batched/sharded feature extraction.
* ``reference``: cached reference statistics per (dataset, split, extractor, count).
"""

from jaxgen.metrics.distances import energy_distance, median_distance, mmd_rbf
from jaxgen.metrics.features import (DEFAULT_FEATURE_DIR, INCEPTION_NAME, FeatureExtractor,
                                     classifier_extractor, extract_features, feature_stats,
                                     inception_extractor, load_extractor)
from jaxgen.metrics.frechet import (FeatureStats, FrechetResult, StatsAccumulator,
                                    frechet_distance, gaussian_frechet_distance,
                                    stats_from_features)
from jaxgen.metrics.kid import KIDResult, kid, mmd2_unbiased, polynomial_kernel
from jaxgen.metrics.lowdim import (ModeCoverage, mode_coverage, sliced_wasserstein,
                                   toy_mode_coverage, wasserstein_1d)
from jaxgen.metrics.precision_recall import (DensityCoverage, PrecisionRecall,
                                             density_coverage, knn_radii, precision_recall)
from jaxgen.metrics.reference import (DEFAULT_STATS_DIR, load_split_images,
                                      reference_features, reference_path, reference_stats)

__all__ = [
    "DEFAULT_FEATURE_DIR", "DEFAULT_STATS_DIR", "DensityCoverage", "FeatureExtractor",
    "INCEPTION_NAME", "inception_extractor",
    "FeatureStats", "FrechetResult", "KIDResult", "ModeCoverage", "PrecisionRecall",
    "StatsAccumulator", "classifier_extractor", "density_coverage", "energy_distance",
    "extract_features", "feature_stats", "frechet_distance", "gaussian_frechet_distance",
    "kid", "knn_radii", "load_extractor", "load_split_images", "median_distance", "mmd2_unbiased",
    "mmd_rbf", "mode_coverage", "polynomial_kernel", "precision_recall", "reference_path",
    "reference_features", "reference_stats", "sliced_wasserstein", "stats_from_features",
    "toy_mode_coverage", "wasserstein_1d",
]
