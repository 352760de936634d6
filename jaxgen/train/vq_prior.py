"""An autoregressive prior over the codes of a trained VQ-VAE, for the generic loop
(van den Oord et al. 2017, Sec. 3.3; with a transformer as in Esser, Rombach & Ommer
2021): "autoregressive models strike back" over discrete latents.

``prior.vqvae_workdir`` names a trained family-``vqvae`` run. Its EMA parameters are
restored once and stay frozen: each batch of images is encoded to its code grid
(B, h, w), read in raster order as a sequence of L = h * w tokens, and a causal
transformer (``jaxgen.nets.ar_transformer``) is trained on the exact cross-entropy
-log p(codes) = -sum_i log p(c_i | c_<i). ``evaluate`` reports it in nats per image
(``nll``) and bits per code; ``sample`` draws code grids with the one-loop sampler of
``jaxgen.autoregressive`` (L sequential transformer passes, ``sampler.temperature``,
``sampler.top_k``) and decodes them with the VQ-VAE into images in [-1, 1].
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgen import autoregressive as ar
from jaxgen.errors import ConfigError
from jaxgen.nets.ar_transformer import ARTransformer
from jaxgen.train.optim import build_optimizer
from jaxgen.train.state import TrainState


def _vqvae_config(workdir: str):
    from jaxgen.train import checkpoint
    return checkpoint.load_config(workdir)


def validate_config(config: ml_collections.ConfigDict) -> None:
    """``model.name`` ('ar_transformer'), the ``prior`` section and the sampler. That
    ``prior.vqvae_workdir`` holds a trained VQ-VAE is checked with the data
    (``check_data``), also before anything is compiled."""
    from jaxgen.train.autoregressive import validate_sampler
    from jaxgen.train.validation import choice, get_field, positive_int

    choice(config, "model.name", ("ar_transformer",))
    workdir = get_field(config, "prior.vqvae_workdir")
    if not isinstance(workdir, str) or not workdir:
        raise ConfigError("prior.vqvae_workdir", workdir, "must be the workdir of a trained "
                          "family-'vqvae' run")
    positive_int(config, "prior.num_layers")
    heads = positive_int(config, "prior.num_heads")
    dim = positive_int(config, "prior.embed_dim")
    if dim % heads:
        raise ConfigError("prior.embed_dim", dim, f"must be divisible by prior.num_heads "
                          f"({heads})")
    positive_int(config, "prior.mlp_ratio")
    validate_sampler(config, None)


def check_data(config: ml_collections.ConfigDict, example_shape) -> None:
    """``prior.vqvae_workdir`` must hold a trained family-'vqvae' run, trained on images
    of this shape; ``sampler.top_k`` must not exceed its codebook size."""
    from jaxgen.train import checkpoint
    workdir = config.prior.vqvae_workdir
    if not os.path.isfile(os.path.join(workdir, "config.json")):
        raise ConfigError("prior.vqvae_workdir", workdir, "must be the workdir of a trained "
                          "family-'vqvae' run (holding config.json and checkpoints/)")
    saved = _vqvae_config(workdir)
    if saved.family != "vqvae":
        raise ConfigError("prior.vqvae_workdir", workdir, f"holds a family-{saved.family!r} "
                          "run; the prior needs a 'vqvae' run")
    shape = tuple(int(d) for d in example_shape)
    trained = tuple(checkpoint.load_meta(workdir)["example_shape"])
    if shape != trained:
        raise ConfigError("data.name", config.data.name, f"gives examples of shape {shape}, "
                          f"but the VQ-VAE in prior.vqvae_workdir was trained on {trained}")
    k = int(saved.vq.num_codes)
    if config.sampler.top_k > k:
        raise ConfigError("sampler.top_k", config.sampler.top_k, f"must be in [0, {k}] (the "
                          "VQ-VAE's codebook size; 0 keeps all)")


class VQPriorFamily:
    """Causal transformer prior over a frozen VQ-VAE's code grid.

    Args:
      config: the run config (sections ``model``, ``prior``, ``sampler``, ``optim``,
        ``train``).
      data_shape: shape of one image, (H, W, C).

    Attributes:
      vqvae: the restored VQ-VAE run (``jaxgen.api.Run``); ``vqvae_params`` its frozen
        EMA parameters.
    """

    name = "vq_prior"
    validate_config = staticmethod(validate_config)
    check_data = staticmethod(check_data)

    def __init__(self, config: ml_collections.ConfigDict, data_shape):
        from jaxgen import api
        self.config = config
        self.data_shape = tuple(int(d) for d in data_shape)
        self.vqvae = api.load(config.prior.vqvae_workdir)
        self.vq = self.vqvae.family
        # Host copies: the frozen VQ-VAE enters the compiled steps as constants.
        self.vqvae_params = jax.tree.map(np.asarray, jax.device_get(
            self.vqvae.state.ema_params))
        self.grid_shape = self.vq.grid_shape
        self.seq_len = math.prod(self.grid_shape)
        self.num_codes = self.vq.num_codes
        p = config.prior
        self.model = ARTransformer(num_tokens=self.num_codes, seq_len=self.seq_len,
                                   embed_dim=p.embed_dim, num_layers=p.num_layers,
                                   num_heads=p.num_heads, mlp_ratio=p.mlp_ratio)
        self.temperature = float(config.sampler.temperature)
        self.top_k = int(config.sampler.top_k)
        self.tx = build_optimizer(config.optim, config.train.num_steps)
        self.ema_decay = config.optim.ema_decay

    def init(self, rng) -> TrainState:
        params = self.model.init(rng, jnp.zeros((1, self.seq_len), jnp.int32))["params"]
        return TrainState.create(params, self.tx)

    def codes(self, x):
        """Images (B, H, W, C) in [-1, 1] -> their code sequences (B, L) int32."""
        idx = self.vq.encode_indices(self.vqvae_params, x)
        return jax.lax.stop_gradient(idx).reshape((x.shape[0], self.seq_len))

    def logits_fn(self, params):
        """``codes (B, L) -> logits (B, L, K)``, row i from codes < i."""
        return lambda c: self.model.apply({"params": params}, c)

    def nll(self, params, codes):
        """-log p(codes) in nats, (B,)."""
        return ar.categorical_nll(self.logits_fn(params)(codes), codes)

    def train_step(self, state: TrainState, batch, rng):
        """One optimizer step on the codes' cross-entropy. Returns (state, metrics): loss
        (nats per code), nll (nats per image), bits_per_code, grad_norm."""
        del rng
        codes = self.codes(batch["x"])

        def loss_fn(params):
            nll = jnp.mean(self.nll(params, codes))
            return nll / self.seq_len, nll

        (loss, nll), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = state.apply_gradients(grads, self.tx, self.ema_decay)
        return state, {"loss": loss, "nll": nll,
                       "bits_per_code": ar.bits_per_dim(nll, self.seq_len),
                       "grad_norm": optax.global_norm(grads)}

    def evaluate(self, params, batch, rng):
        """-log p(codes of held-out images): ``nll`` (nats per image), ``bits_per_code``,
        ``loss`` (nats per code)."""
        del rng
        nll = jnp.mean(self.nll(params, self.codes(batch["x"])))
        return {"loss": nll / self.seq_len, "nll": nll,
                "bits_per_code": ar.bits_per_dim(nll, self.seq_len)}

    def sample_codes(self, params, rng, num: int):
        """Code grids (num, h, w) drawn from the prior."""
        codes = ar.sample(self.logits_fn(params), rng, (num, self.seq_len),
                          temperature=self.temperature, top_k=self.top_k)
        return codes.reshape((num,) + self.grid_shape)

    def sample(self, params, rng, num: int):
        """Codes from the prior, decoded by the VQ-VAE: (num, H, W, C) in [-1, 1]."""
        return self.vq.decode_indices(self.vqvae_params, self.sample_codes(params, rng, num))
