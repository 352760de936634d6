"""Training: state, optimizers, sharding, checkpoints, the loop and one module per family.

A family is a class with

* ``validate_config(config)`` (static): checks its own config sections, raising
  ``jaxgen.errors.ConfigError``; the shared sections are checked by ``validation``;
* ``check_data(config, example_shape)`` (static): the data suits its model;
* ``__init__(config, data_shape)``, ``init(rng) -> TrainState``,
  ``train_step(state, batch, rng) -> (state, metrics)``, ``sample(params, rng, num)``
  (``params`` is ``state.ema_params``) and ``evaluate(params, batch, rng) -> dict``.

``FAMILIES`` names them; ``get_family(name)`` imports one, so a family's dependencies
load only when it is used.
"""

import importlib

FAMILIES = {
    "diffusion": "jaxgen.train.diffusion:DiffusionFamily",
    "vae": "jaxgen.train.vae:VAEFamily",
    "gan": "jaxgen.train.gan:GANFamily",
    "autoregressive": "jaxgen.train.autoregressive:AutoregressiveFamily",
    "vqvae": "jaxgen.train.vqvae:VQVAEFamily",
    "vq_prior": "jaxgen.train.vq_prior:VQPriorFamily",
    "autoencoder": "jaxgen.train.autoencoder:AutoencoderFamily",
}


def get_family(name: str):
    """The family class registered as ``name`` (a key of ``FAMILIES``)."""
    if name not in FAMILIES:
        raise KeyError(f"unknown family {name!r}; one of {', '.join(map(repr, FAMILIES))}")
    module, attr = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["FAMILIES", "get_family"]
