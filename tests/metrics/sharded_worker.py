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
    samples, quality = generation(mesh)
    np.savez(out, features=feats, mean=a.mean, cov=a.cov, fd=fd, devices=jax.device_count(),
             hash=ext.hash, samples=samples, energy_distance=quality["energy_distance"],
             sliced_wasserstein=quality["sliced_wasserstein"])


def generation(mesh):
    """Samples of the toy diffusion family (random weights, 20-step DDPM) drawn over the
    mesh by ``evaluation.generate`` (16 per call: 2 per device on 8), and their metrics."""
    import tempfile

    from configs import ddpm_toy
    from jaxgen.train import evaluation, loop

    config = ddpm_toy.get_config("smoke")
    config.eval.num_samples, config.eval.batch_size = 40, 16
    family = loop.make_family(config, (2,))
    params = jax.tree.map(lambda p: p + 0.1, jax.jit(family.init)(jax.random.key(0)).ema_params)
    samples = evaluation.generate(family, params, jax.random.key(1), 40, 16, mesh)
    with tempfile.TemporaryDirectory() as workdir:
        quality = evaluation.sample_quality(config, family, params, jax.random.key(1), workdir,
                                            mesh)
    return samples, quality


if __name__ == "__main__":
    main(sys.argv[1])
