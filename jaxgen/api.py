"""Using a trained run from other code: ``jaxgen.load(workdir)``."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxgen.core import xla_options
from jaxgen.errors import ConfigError
from jaxgen.train import checkpoint, loop, sharding

# What sampling and evaluation may change in a trained run's config, and what must stay as
# trained because it defines the network and the state in the checkpoint. Other fields
# (optim, train.*) do not affect sampling or evaluation and are kept as saved.
# An overridable field inside a fixed section (the VAE's likelihood estimate) wins.
OVERRIDABLE = ("seed", "sampler", "data", "train.eval_batches", "eval", "vae.eval_num_samples",
               "vae.eval_chunk_size")
MUST_MATCH = ("family", "model", "diffusion", "vae", "gan", "ar", "vq", "prior", "autoencoder",
              "latent")


def _plain(config) -> dict:
    """A ConfigDict or dict as plain JSON values (tuples become lists, as in config.json)."""
    if isinstance(config, ml_collections.ConfigDict):
        return json.loads(config.to_json_best_effort())
    return json.loads(json.dumps(config))


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _under(path: str, sections) -> bool:
    return any(path == s or path.startswith(s + ".") for s in sections)


def _set(tree: dict, path: str, value) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _is_new_field(saved: dict, path: str) -> bool:
    """Whether ``path`` is missing from ``saved`` while its section exists there (a field
    added to a section after the run was saved), or its whole top-level section is new."""
    *parents, _ = path.split(".")
    node = saved
    for part in parents:
        if not isinstance(node, dict):
            return False
        if part not in node:
            return True
        node = node[part]
    return isinstance(node, dict)


def inference_config(saved, given) -> ml_collections.ConfigDict:
    """The config to sample or evaluate a trained run with.

    Args:
      saved: the run's config (``checkpoint.load_config(workdir)``).
      given: a full config (e.g. the ``--config`` of the command line) or a partial nested
        dict such as ``{"sampler": {"method": "ddim", "num_steps": 50}}``. Its fields
        under ``OVERRIDABLE`` replace the saved ones; its fields under ``MUST_MATCH``
        must equal the saved ones; the rest are ignored. A ``MUST_MATCH`` field the run's
        config lacks (jaxgen gained it after the run was saved) takes the given value, so
        that runs trained before a new option existed still load with today's configs.

    Raises:
      ConfigError: a ``MUST_MATCH`` field differs from the run's, or an overridable field
        does not exist in the run's config.
    """
    out = _plain(saved)
    saved_flat = _flatten(out)
    missing = object()
    for path, value in _flatten(_plain(given)).items():
        if _under(path, OVERRIDABLE):
            if path not in saved_flat:
                raise ConfigError(path, value, "is not a field of the run's config")
            _set(out, path, value)
        elif _under(path, MUST_MATCH):
            if path not in saved_flat and _is_new_field(out, path):
                # A field jaxgen gained after the run was trained: the run behaves as its
                # default, which is what a full given config holds.
                _set(out, path, value)
            elif saved_flat.get(path, missing) != value:
                was = saved_flat.get(path, "<unset>")
                raise ConfigError(path, value, f"must equal {was!r}, the value the run was "
                                  f"trained with ({', '.join(MUST_MATCH)} cannot change after "
                                  f"training; {', '.join(OVERRIDABLE)} can)")
    return ml_collections.ConfigDict(out)


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
        return loop.write_samples(self._sample_fn, self.state.ema_params, rng, path, num,
                                  **loop.picture_options(self.config, self.family))

    def evaluate(self, pipeline, num_batches: int) -> dict:
        """Mean of ``family.evaluate`` over the first ``num_batches`` batches of ``pipeline``."""
        mesh = sharding.make_mesh()
        fn = xla_options.jit(self.family.evaluate)
        key = loop.keys(self.config.seed)["eval"]
        totals: dict = {}
        for i in range(num_batches):
            batch = sharding.global_batch(pipeline.batch(i), mesh)
            for k, v in fn(self.state.ema_params, batch, jax.random.fold_in(key, i)).items():
                totals[k] = totals.get(k, 0.0) + float(v) / num_batches
        return {"step": self.step, **totals}


def load(workdir: str, overrides=None) -> Run:
    """Restores the latest readable checkpoint of the run in ``workdir`` with its saved
    config.

    Fields added to ``jaxgen/defaults.py`` after the run was saved take their defaults.

    Args:
      overrides: optional sampling/evaluation changes, e.g.
        ``{"sampler": {"method": "ddim", "num_steps": 50}}`` (see ``inference_config``).

    Raises:
      FileNotFoundError: if ``workdir`` holds no config or no checkpoint.
      ConfigError: if ``overrides`` changes the model or is not a valid config.
      checkpoint.CheckpointError: if checkpoints exist but none can be read.
    """
    config = checkpoint.load_config(workdir)
    if overrides is not None:
        from jaxgen.train import validation
        config = inference_config(config, overrides)
        validation.validate(config)
    return restore(workdir, config)


def restore(workdir: str, config: ml_collections.ConfigDict) -> Run:
    """Restores the run in ``workdir`` under ``config`` (already checked against the run's
    own, e.g. by ``inference_config``). A damaged newest checkpoint is passed over with a
    warning, but nothing in the run directory is moved or deleted."""
    family = loop.make_family(config, checkpoint.load_meta(workdir)["example_shape"])
    mngr = checkpoint.manager(workdir, keep=None, create=False)
    try:
        if mngr.latest_step() is None:
            raise FileNotFoundError(f"no checkpoint in {checkpoint.checkpoint_dir(workdir)}")
        state, _ = loop.init_or_restore(family, sharding.make_mesh(), mngr, config.seed)
    finally:
        mngr.close()
    return Run(config=config, state=state, family=family)
