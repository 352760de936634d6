"""The training state: a pytree of arrays only, so orbax can save and shard it."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training.

    Attributes:
      step: int32 scalar, number of optimizer updates applied.
      params: model parameters.
      opt_state: optax state.
      ema_params: exponential moving average of params (used for sampling).
      model_state: non-trainable collections (e.g. ``batch_stats``); ``{}`` if none.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    ema_params: Any
    model_state: Any

    @classmethod
    def create(cls, params, tx: optax.GradientTransformation, model_state=None) -> "TrainState":
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                   ema_params=jax.tree.map(jnp.copy, params),
                   model_state={} if model_state is None else model_state)

    def apply_gradients(self, grads, tx: optax.GradientTransformation,
                        ema_decay: float, model_state=None) -> "TrainState":
        """One optimizer update followed by the EMA update of the parameters.

        The EMA uses ``optax.incremental_update``: ema <- decay * ema + (1 - decay) * params.
        """
        updates, opt_state = tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        ema = optax.incremental_update(params, self.ema_params, 1.0 - ema_decay)
        return self.replace(step=self.step + 1, params=params, opt_state=opt_state,
                            ema_params=ema,
                            model_state=self.model_state if model_state is None else model_state)
