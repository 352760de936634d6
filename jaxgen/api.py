"""Using a trained run from other code: ``jaxgen.load(workdir)``."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxgen.train import checkpoint, loop, sharding


@dataclasses.dataclass
class Run:
    """A trained run restored from its workdir.

    Attributes:
      config: the config the run was trained with.
      state: the restored TrainState (``state.ema_params`` are used for sampling).
      family: the family object (``family.model`` is the Flax module,
        ``family.model_fn(params)`` the ``(x_t, t) -> prediction`` closure and
        ``family.process`` the diffusion process, for a diffusion run).
    """

    config: ml_collections.ConfigDict
    state: Any
    family: Any

    @property
    def step(self) -> int:
        return int(jax.device_get(self.state.step))

    def __post_init__(self):
        self._sample_fn = loop.sampler(self.family)

    def sample(self, rng: jax.Array, num: int) -> np.ndarray:
        """``num`` samples from the EMA parameters, as an array in the data's layout."""
        return np.asarray(self._sample_fn(self.state.ema_params, rng, num))

    def save_samples(self, path: str, num: int, rng: jax.Array | None = None) -> str:
        """Writes a grid of ``num`` samples (default key: the run's own sample stream)."""
        rng = loop.keys(self.config.seed)["sample"] if rng is None else rng
        return loop.write_samples(self._sample_fn, self.state.ema_params, rng, path, num)

    def evaluate(self, pipeline, num_batches: int) -> dict:
        """Mean of ``family.evaluate`` over the first ``num_batches`` batches of ``pipeline``."""
        mesh = sharding.make_mesh()
        fn = jax.jit(self.family.evaluate)
        key = loop.keys(self.config.seed)["eval"]
        totals: dict = {}
        for i in range(num_batches):
            batch = sharding.global_batch(pipeline.batch(i), mesh)
            for k, v in fn(self.state.ema_params, batch, jax.random.fold_in(key, i)).items():
                totals[k] = totals.get(k, 0.0) + float(v) / num_batches
        return {"step": self.step, **totals}


def load(workdir: str) -> Run:
    """Restores the latest checkpoint of the run in ``workdir`` with its saved config.

    Raises:
      FileNotFoundError: if ``workdir`` holds no config or no checkpoint.
    """
    config = checkpoint.load_config(workdir)
    family = loop.make_family(config, checkpoint.load_meta(workdir)["example_shape"])
    mngr = checkpoint.manager(workdir, keep=None, create=False)
    try:
        if mngr.latest_step() is None:
            raise FileNotFoundError(f"no checkpoint in {checkpoint.checkpoint_dir(workdir)}")
        state, _ = loop.init_or_restore(family, sharding.make_mesh(), mngr, config.seed)
    finally:
        mngr.close()
    return Run(config=config, state=state, family=family)
