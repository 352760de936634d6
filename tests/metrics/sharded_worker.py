"""Run as a subprocess by test_sharded.py: features and stats over a mesh of all devices.

Usage: python tests/metrics/sharded_worker.py OUT.npz  (device count from XLA_FLAGS).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh  # noqa: E402

from jaxgen.data.pipeline import preprocess  # noqa: E402
from jaxgen.data.sources import digits_source  # noqa: E402
from jaxgen.metrics import extract_features, feature_stats, frechet_distance  # noqa: E402
from tests.metrics.helpers import make_extractor  # noqa: E402


def main(out):
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    ext = make_extractor()
    images = preprocess(digits_source("all").images)  # 1797: the last step is padded
    feats = extract_features(ext, images, batch_size=32, mesh=mesh)
    a = feature_stats(ext, images[:900], dataset="digits", split="all[:900]", batch_size=32,
                      mesh=mesh)
    b = feature_stats(ext, images[900:], dataset="digits", split="all[900:]", batch_size=32,
                      mesh=mesh)
    fd = frechet_distance(a, b).value
    np.savez(out, features=feats, mean=a.mean, cov=a.cov, fd=fd, devices=jax.device_count(),
             hash=ext.hash)


if __name__ == "__main__":
    main(sys.argv[1])
