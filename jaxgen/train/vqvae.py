"""The VQ-VAE family for the generic loop (van den Oord, Vinyals & Kavukcuoglu 2017).

Encoder -> nearest code of a K x D codebook -> decoder; the loss is
  ||x - x_hat||^2 + beta ||z_e - sg[e_k]||^2 (+ ||sg[z_e] - e_k||^2 with
  ``vq.codebook_update='loss'``),
with straight-through gradients from the decoder to the encoder (``jaxgen.autoregressive
.quantize``). With ``vq.codebook_update='ema'`` (App. A.1) the codebook takes no gradient:
after each optimizer step it is set to the moving averages m_j / N_j of the encodings
assigned to each code, whose statistics live in ``state.model_state``
(``cluster_size`` (K,), ``embed_sum`` (K, D); N starts at 1 and m at the initial codes, so
a code that is never assigned stays where it is). With ``vq.restart_threshold > 0`` a
code whose running count N_j falls below it is moved onto a random encoding of the batch
(the random restarts of Dhariwal et al. 2020), against codebook collapse.

Metrics: the reconstruction error (mean squared error per value, images in [-1, 1]), the
commitment loss, the codebook perplexity exp(H(code frequencies)) and the number of dead
codes (codes no position of the batch uses); ``evaluate`` reports them on held-out data.

A VQ-VAE has no prior of its own (the paper fits one afterwards: family ``vq_prior``):
``sample`` decodes code grids drawn uniformly, which shows what the codes decode to, not
samples of the data distribution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgen import autoregressive as ar
from jaxgen.errors import ConfigError
from jaxgen.nets.vqvae import VQVAE
from jaxgen.train.optim import build_optimizer
from jaxgen.train.state import TrainState, ema_update

CODEBOOK_UPDATES = ("ema", "loss")


def validate_config(config: ml_collections.ConfigDict) -> None:
    """``model.name`` ('vqvae') and the ``vq`` section."""
    from jaxgen.train.validation import choice, get_field, number, positive_int

    choice(config, "model.name", ("vqvae",))
    positive_int(config, "vq.num_codes", minimum=2)
    positive_int(config, "vq.code_dim")
    channels = get_field(config, "vq.channels")
    if not (isinstance(channels, (tuple, list)) and channels and all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in channels)):
        raise ConfigError("vq.channels", channels, "must be a non-empty tuple of positive "
                          "integers (one stride-2 level each)")
    positive_int(config, "vq.num_res_blocks", minimum=0)
    number(config, "vq.commitment", 0.0, 1e6)
    choice(config, "vq.codebook_update", CODEBOOK_UPDATES)
    number(config, "vq.ema_decay", 0.0, 1.0, hi_open=True)
    number(config, "vq.ema_epsilon", 0.0, 1.0, lo_open=True)
    restart = number(config, "vq.restart_threshold", 0.0, 1e9)
    if restart > 0 and config.vq.codebook_update != "ema":
        raise ConfigError("vq.restart_threshold", restart, "applies to vq.codebook_update="
                          "'ema' only (it restarts codes by their running counts); must be 0")
    positive_int(config, "sampler.num_samples")


def check_data(config: ml_collections.ConfigDict, example_shape) -> None:
    """Images (H, W, C) whose size the encoder's stride-2 levels divide."""
    shape = tuple(int(d) for d in example_shape)
    if len(shape) != 3 or config.data.name.startswith("toy:"):
        raise ConfigError("data.name", config.data.name, f"gives examples of shape {shape}; "
                          "the VQ-VAE needs images (H, W, C)")
    f = 2 ** len(config.vq.channels)
    if shape[0] % f or shape[1] % f:
        raise ConfigError("vq.channels", tuple(config.vq.channels), f"{len(config.vq.channels)}"
                          f" stride-2 levels downsample by {f}, which must divide the image "
                          f"size {shape[0]}x{shape[1]}")


class VQVAEFamily:
    """VQ-VAE with a straight-through estimator and an EMA or loss-trained codebook.

    Args:
      config: the run config (sections ``model``, ``vq``, ``sampler``, ``optim``, ``train``).
      data_shape: shape of one image, (H, W, C).
    """

    name = "vqvae"
    validate_config = staticmethod(validate_config)
    check_data = staticmethod(check_data)

    def __init__(self, config: ml_collections.ConfigDict, data_shape):
        self.config = config
        self.data_shape = tuple(int(d) for d in data_shape)
        v = config.vq
        self.num_codes = int(v.num_codes)
        self.beta = float(v.commitment)
        self.use_ema = v.codebook_update == "ema"
        self.ema_decay_codes = float(v.ema_decay)
        self.ema_epsilon = float(v.ema_epsilon)
        self.restart_threshold = float(v.restart_threshold)
        self.model = VQVAE(out_channels=self.data_shape[-1], num_codes=self.num_codes,
                           code_dim=v.code_dim, channels=tuple(v.channels),
                           num_res_blocks=v.num_res_blocks)
        f = 2 ** len(v.channels)
        self.grid_shape = (self.data_shape[0] // f, self.data_shape[1] // f)
        self.tx = build_optimizer(config.optim, config.train.num_steps)
        self.ema_decay = config.optim.ema_decay

    def init(self, rng) -> TrainState:
        params = self.model.init(rng, jnp.zeros((1,) + self.data_shape, jnp.float32))["params"]
        model_state = {}
        if self.use_ema:
            model_state = {"cluster_size": jnp.ones((self.num_codes,), jnp.float32),
                           "embed_sum": jnp.array(params["codebook"])}
        return TrainState.create(params, self.tx, model_state=model_state)

    # -- the pieces ------------------------------------------------------------------------

    def encode(self, params, x):
        """z_e (B, h, w, D) of images in [-1, 1]."""
        return self.model.apply({"params": params}, x, method="encode")

    def decode(self, params, z_q):
        """Decoder output (B, H, W, C) of quantized encodings (not clipped)."""
        return self.model.apply({"params": params}, z_q, method="decode")

    def encode_indices(self, params, x):
        """The code grid (B, h, w) int32 of images in [-1, 1]."""
        return ar.nearest_code(self.encode(params, x), params["codebook"])

    def decode_indices(self, params, indices):
        """Images in [-1, 1] (B, H, W, C) decoded from a code grid (B, h, w)."""
        return jnp.clip(self.decode(params, ar.lookup(indices, params["codebook"])), -1.0, 1.0)

    def reconstruct(self, params, x):
        return self.decode_indices(params, self.encode_indices(params, x))

    def forward(self, params, x):
        """(loss per example, terms) of a batch; the terms: reconstruction, commitment,
        codebook_loss, and the quantization (``ar.Quantized``) and z_e themselves."""
        z_e = self.encode(params, x)
        q = ar.quantize(z_e, params["codebook"])
        x_hat = self.decode(params, q.z_q)
        recon = jnp.mean(jnp.square(x_hat - x).reshape((x.shape[0], -1)), axis=-1)
        loss = recon + self.beta * q.commitment
        if not self.use_ema:
            loss = loss + q.codebook_loss
        return loss, {"reconstruction": recon, "commitment": q.commitment,
                      "codebook_loss": q.codebook_loss, "quantized": q, "z_e": z_e}

    @staticmethod
    def usage(indices, num_codes):
        counts = ar.code_counts(indices, num_codes)
        return {"perplexity": ar.perplexity(counts), "dead_codes": ar.dead_codes(counts)}

    # -- training and evaluation ----------------------------------------------------------

    def train_step(self, state: TrainState, batch, rng):
        """One optimizer step, then (``'ema'``) the codebook's moving-average update and
        the restart of codes whose running count is below ``vq.restart_threshold``.
        Returns (state, metrics): loss, reconstruction, commitment, perplexity,
        dead_codes (of this batch), restarted (codes restarted), grad_norm."""
        x = batch["x"]

        def loss_fn(params):
            loss, terms = self.forward(params, x)
            return jnp.mean(loss), terms

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        model_state = state.model_state
        q = terms["quantized"]
        if self.use_ema:
            n, m = ar.ema_update(model_state["cluster_size"], model_state["embed_sum"],
                                 terms["z_e"], q.indices, self.ema_decay_codes)
            restarted = jnp.zeros((), jnp.int32)
            if self.restart_threshold > 0:
                restarted = jnp.sum(n < self.restart_threshold).astype(jnp.int32)
                n, m = ar.restart_dead_codes(n, m, terms["z_e"], rng, self.restart_threshold)
            model_state = {"cluster_size": n, "embed_sum": m}
            params = {**params, "codebook": ar.ema_codebook(n, m, self.ema_epsilon)}
        ema = ema_update(state.ema_params, params, state.step, self.ema_decay)
        state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              ema_params=ema, model_state=model_state)
        return state, {"loss": loss, "reconstruction": jnp.mean(terms["reconstruction"]),
                       "commitment": jnp.mean(terms["commitment"]),
                       **self.usage(q.indices, self.num_codes),
                       **({"restarted": restarted} if self.use_ema else {}),
                       "grad_norm": optax.global_norm(grads)}

    def evaluate(self, params, batch, rng):
        """Held-out reconstruction error (mean squared error per value), commitment,
        codebook perplexity and dead codes over the batch."""
        del rng
        loss, terms = self.forward(params, batch["x"])
        return {"loss": jnp.mean(loss), "reconstruction": jnp.mean(terms["reconstruction"]),
                "commitment": jnp.mean(terms["commitment"]),
                **self.usage(terms["quantized"].indices, self.num_codes)}

    def sample(self, params, rng, num: int):
        """Decoded code grids drawn uniformly (no prior; see the module docstring)."""
        indices = jax.random.randint(rng, (num,) + self.grid_shape, 0, self.num_codes)
        return self.decode_indices(params, indices)
