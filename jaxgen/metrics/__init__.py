"""Sample-quality metrics: two-sample distances (jax + numpy)."""

from jaxgen.metrics.distances import energy_distance, median_distance, mmd_rbf

__all__ = ["energy_distance", "median_distance", "mmd_rbf"]
