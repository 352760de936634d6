"""Sample quality of a trained family: generate, extract features, compare with real data.

Every number this module returns travels with what it was computed from: the sample
count, the reference (dataset, split, count) and, for images, the feature extractor's
identifier (``name@hash``). Two numbers are comparable exactly when those agree.

* Images: FD (against reference statistics of the whole reference split, cached in
  ``workdir/reference_stats``), KID, precision/recall and density/coverage (against the
  features of the first ``eval.num_samples`` reference images, cached there too), all on
  the features of ``eval.feature_net``: a ``jaxgen.metrics.FeatureExtractor`` file (e.g.
  from ``experiments/train_classifier.py``) or the FID InceptionV3 ``.npz`` weights (see
  ``metrics.inception_extractor``). Without a feature net there are no image metrics.
* Points (toy data): energy distance and sliced Wasserstein distance to as many reference
  points, and mode coverage where the distribution is a known mixture.

Generation is split over the mesh: each sampler call draws ``eval.batch_size`` samples
whose noise depends only on their position (``fold_in(rng, call)``, then the position in
the call), so the samples, and every metric, do not depend on the device count.
"""

from __future__ import annotations

import functools
import os

import jax
import ml_collections
import numpy as np

from jaxgen import metrics
from jaxgen.core import xla_options
from jaxgen.train import distributed, sharding

REFERENCE_DIR = "reference_stats"


@functools.lru_cache(maxsize=8)
def _sharded_sampler(family, mesh):
    """``family.sample`` jitted with the batch split over the mesh; built once per
    (family, mesh), so periodic evaluation during training compiles only the first time."""
    # Parameters keep the sharding they have (replicated, or FSDP during training).
    return xla_options.jit(family.sample, static_argnums=2,
                           in_shardings=(None, sharding.replicated(mesh)),
                           out_shardings=sharding.batch_sharded(mesh))


def generate(family, params, rng, num: int, batch_size: int, mesh=None) -> np.ndarray:
    """``num`` samples from ``family.sample`` in calls of ``batch_size`` (one compile).

    The samples of call i use ``fold_in(rng, i)``; the last call is cut to size. With a
    mesh, each call's batch is split over its ``data`` axis.
    """
    fn = _sharded_sampler(family, sharding.make_mesh() if mesh is None else mesh)
    out = []
    for i, start in enumerate(range(0, num, batch_size)):
        x = fn(params, jax.random.fold_in(rng, i), batch_size)
        out.append(distributed.to_host(x)[:num - start])
    return np.concatenate(out) if out else np.zeros((0,))


# Toy distributions are infinite: the reference is a fresh draw under a seed no run uses
# for training (runs draw from ``config.seed``), so it is independent of the training data.
TOY_REFERENCE_SEED = 2**31 - 1


def _toy_quality(config, samples: np.ndarray) -> dict:
    from jaxgen.data import make_source
    from jaxgen.data.toy import MIXTURES

    source = make_source(config.data.name, config.data.split, None)
    reference = np.asarray(source.sample_at(TOY_REFERENCE_SEED, np.arange(len(samples))))
    result = {"energy_distance": float(metrics.energy_distance(samples, reference)),
              "sliced_wasserstein": float(metrics.sliced_wasserstein(samples, reference))}
    if source.name in MIXTURES:
        cov = metrics.toy_mode_coverage(source.name, samples)
        result.update(modes_covered=int(cov.modes_covered), num_modes=int(cov.num_modes),
                      high_quality_fraction=float(cov.high_quality_fraction))
    return result


def _image_quality(config, samples: np.ndarray, reference_split: str, workdir: str,
                   mesh) -> dict:
    extractor = metrics.load_extractor(config.eval.feature_net,
                                       input_shape=samples.shape[1:])
    ref_stats = metrics.reference_stats(
        config.data.name, reference_split, extractor, data_dir=config.data.data_dir,
        cache_dir=os.path.join(workdir, REFERENCE_DIR), mesh=mesh)
    fake = metrics.extract_features(extractor, samples, mesh=mesh)
    fake_stats = metrics.stats_from_features(fake, extractor.identifier, "samples", "generated")
    real = metrics.reference_features(
        config.data.name, reference_split, extractor, len(samples),
        data_dir=config.data.data_dir, cache_dir=os.path.join(workdir, REFERENCE_DIR), mesh=mesh)
    fd = metrics.frechet_distance(fake_stats, ref_stats)
    # Subsets of half the sets (at most the usual 1000): subsets as large as the sets would
    # all be the same, and give no spread.
    kid = metrics.kid(fake, real, subset_size=max(2, min(1000, len(fake) // 2, len(real) // 2)))
    pr = metrics.precision_recall(real, fake)
    dc = metrics.density_coverage(real, fake)
    return {"fd": float(fd), "kid": float(kid.mean), "kid_std": float(kid.std),
            "kid_subset_size": int(kid.subset_size),
            "precision": float(pr.precision), "recall": float(pr.recall),
            "density": float(dc.density), "coverage": float(dc.coverage),
            "feature_net": extractor.identifier, "fd_reference_count": int(ref_stats.count),
            "knn_reference_count": int(len(real))}


def sample_quality(config: ml_collections.ConfigDict, family, params, rng, workdir: str,
                   mesh=None) -> dict:
    """Draws ``config.eval.num_samples`` samples and compares them with real data.

    Returns:
      A flat dict of metrics (empty for images without ``eval.feature_net``) plus
      ``num_samples`` and ``reference`` ('dataset split'), so that every number states
      what it was computed from. ``sample_quality_skipped`` says why nothing was measured.
    """
    ecfg = config.eval
    if not ecfg.num_samples:
        return {}
    toy = config.data.name.startswith("toy:")
    split = (f"fresh draws (seed {TOY_REFERENCE_SEED})" if toy
             else ecfg.reference_split or config.data.eval_split)
    if not toy and not ecfg.feature_net:
        return {"sample_quality_skipped": "no eval.feature_net for image data"}
    mesh = sharding.make_mesh() if mesh is None else mesh
    samples = generate(family, params, rng, ecfg.num_samples, ecfg.batch_size, mesh)
    if not np.all(np.isfinite(samples)):
        bad = int(np.sum(~np.isfinite(samples).reshape(len(samples), -1).all(axis=1)))
        return {"num_samples": len(samples), "nonfinite_samples": bad,
                "reference": f"{config.data.name} {split}"}
    if jax.process_count() > 1:
        mesh = distributed.local_mesh()  # every process holds all samples now
    if toy:
        result = _toy_quality(config, samples.reshape(len(samples), -1))
    else:
        result = _image_quality(config, samples, split, workdir, mesh)
    return {**result, "num_samples": int(len(samples)),
            "reference": f"{config.data.name} {split}"}


def numeric(result: dict, prefix: str = "eval/") -> dict:
    """The numeric entries of ``sample_quality``'s result, keyed for a metric writer."""
    return {prefix + k: float(v) for k, v in result.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}
