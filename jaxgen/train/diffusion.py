"""The diffusion family for the generic loop: init, train_step, sample, evaluate."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgen import diffusion, nets
from jaxgen.train.optim import build_optimizer
from jaxgen.train.state import TrainState


class DiffusionFamily:
    """DDPM-style training of a backbone with the denoising loss (Ho et al. 2020).

    Args:
      config: the run config (sections ``model``, ``diffusion``, ``sampler``, ``optim``,
        ``train``).
      data_shape: shape of one example, e.g. (H, W, C).
    """

    name = "diffusion"

    def __init__(self, config: ml_collections.ConfigDict, data_shape):
        self.config = config
        self.data_shape = tuple(data_shape)
        d = config.diffusion
        self.process = diffusion.ddpm_process(d.schedule, d.num_timesteps, d.beta_start,
                                              d.beta_end)
        self.prediction = d.prediction
        self.model = nets.build(config.model, out_channels=self.data_shape[-1])
        self.tx = build_optimizer(config.optim, config.train.num_steps)
        self.ema_decay = config.optim.ema_decay

    def init(self, rng) -> TrainState:
        x = jnp.zeros((1,) + self.data_shape, jnp.float32)
        t = jnp.zeros((1,), jnp.int32)
        params = self.model.init(rng, x, t)["params"]
        return TrainState.create(params, self.tx)

    def model_fn(self, params, *, train=False, rng=None):
        """Closes over params: (x_t, t) -> prediction, the sampler/loss interface."""
        rngs = {"dropout": rng} if rng is not None else None
        return lambda x, t: self.model.apply({"params": params}, x, t, train=train, rngs=rngs)

    def loss(self, params, batch, rng):
        k_loss, k_drop = jax.random.split(rng)
        per_example = diffusion.denoising_loss(
            self.model_fn(params, train=True, rng=k_drop), self.process, batch["x"], k_loss,
            prediction=self.prediction)
        return jnp.mean(per_example)

    def train_step(self, state: TrainState, batch, rng):
        """One Adam step on the mean denoising loss. Returns (state, metrics)."""
        loss, grads = jax.value_and_grad(self.loss)(state.params, batch, rng)
        state = state.apply_gradients(grads, self.tx, self.ema_decay)
        return state, {"loss": loss, "grad_norm": optax.global_norm(grads)}

    def sample(self, params, rng, num: int):
        """Draws ``num`` samples with the configured sampler. Returns (num, *data_shape)."""
        s = self.config.sampler
        k_init, k_sample = jax.random.split(rng)
        x_T = diffusion.initial_noise(k_init, (num,) + self.data_shape)
        clip = s.clip_x0 if s.clip_x0 > 0 else None
        return diffusion.sample(self.model_fn(params), self.process, x_T, k_sample,
                                method=s.method, prediction=self.prediction,
                                variance=s.variance, clip_x0=clip)

    def evaluate(self, params, batch, rng):
        """Mean denoising loss of ``params`` on ``batch`` (fixed rng -> comparable)."""
        return {"loss": self.loss(params, batch, rng)}
