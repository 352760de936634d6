"""The autoregressive family for the generic loop: PixelCNNs trained by maximum likelihood.

A PixelCNN (``jaxgen.nets.pixelcnn``: masked convolutions, or the gated PixelCNN) gives
the logits of every p(x_i | x_<i) in one pass, so the training loss is the exact
negative log-likelihood (``jaxgen.autoregressive``), and ``evaluate`` reports it:
``nll`` in nats per image and ``bits_per_dim``. Sampling is ancestral, one pixel at a
time (``jaxgen.autoregressive.sample``; ``sampler.temperature``, ``sampler.top_k``).

Data: images in [-1, 1], single channel. ``ar.num_levels`` says what the model sees:

* 2: binary images. Training draws x_bin ~ Bernoulli((x + 1) / 2) afresh every step
  (dynamic binarization); ``evaluate`` binarizes with the fixed key
  ``EVAL_BINARIZATION_SEED``, so evaluations are comparable. One Bernoulli logit per pixel.
* L > 2 (256 for 8-bit MNIST): the intensity quantized to L levels,
  round((x + 1) / 2 * (L - 1)); an L-way softmax per pixel (van den Oord et al. 2016a,
  Sec. 5.3: the discrete softmax beats continuous densities).

The model's input is the discrete image mapped back to [-1, 1]. ``loss`` is the NLL in
nats per dimension (so gradients are O(1) whatever the image size).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgen import autoregressive as ar
from jaxgen.errors import ConfigError
from jaxgen.nets import pixelcnn
from jaxgen.train.optim import build_optimizer
from jaxgen.train.state import TrainState

# The fixed binarization of evaluation batches (num_levels = 2).
EVAL_BINARIZATION_SEED = 0xB1_0A7E


def _odd(config, field: str, minimum: int) -> int:
    from jaxgen.train.validation import positive_int

    v = positive_int(config, field, minimum=minimum)
    if v % 2 == 0:
        raise ConfigError(field, v, f"must be an odd integer >= {minimum} (a centred kernel)")
    return v


def validate_sampler(config, num_classes: int | None) -> None:
    """``sampler.temperature`` (>= 0; 0 = argmax) and ``sampler.top_k`` (0..K; K = None:
    checked later)."""
    from jaxgen.train.validation import number, positive_int

    number(config, "sampler.temperature", 0.0, 1e6)
    k = positive_int(config, "sampler.top_k", minimum=0)
    if num_classes is not None and k > num_classes:
        raise ConfigError("sampler.top_k", k, f"must be in [0, {num_classes}] (the number of "
                          "values per position; 0 keeps all)")
    positive_int(config, "sampler.num_samples")


def validate_config(config: ml_collections.ConfigDict) -> None:
    """``model.name`` (a PixelCNN), the ``ar`` section and the sampler."""
    from jaxgen.train.validation import choice, positive_int

    choice(config, "model.name", pixelcnn.ARCHITECTURES)
    levels = positive_int(config, "ar.num_levels", minimum=2)
    if levels > 256:
        raise ConfigError("ar.num_levels", levels, "must be in [2, 256] (2: binarized, "
                          "256: 8-bit images)")
    positive_int(config, "ar.channels", minimum=2)
    positive_int(config, "ar.num_layers", minimum=0)
    _odd(config, "ar.kernel_size", 1)
    _odd(config, "ar.first_kernel_size", 3)
    positive_int(config, "ar.head_channels")
    validate_sampler(config, levels)


def check_data(config: ml_collections.ConfigDict, example_shape) -> None:
    """Single-channel images (H, W, 1)."""
    shape = tuple(int(d) for d in example_shape)
    if len(shape) != 3 or shape[-1] != 1 or config.data.name.startswith("toy:"):
        raise ConfigError("data.name", config.data.name, f"gives examples of shape {shape}; "
                          "the PixelCNNs model single-channel images (H, W, 1)")


class AutoregressiveFamily:
    """PixelCNN / gated PixelCNN by exact maximum likelihood.

    Args:
      config: the run config (sections ``model`` (name), ``ar``, ``sampler``, ``optim``,
        ``train``).
      data_shape: shape of one example, (H, W, 1).
    """

    name = "autoregressive"
    validate_config = staticmethod(validate_config)
    check_data = staticmethod(check_data)

    def __init__(self, config: ml_collections.ConfigDict, data_shape):
        self.config = config
        self.data_shape = tuple(int(d) for d in data_shape)
        a = config.ar
        self.num_levels = int(a.num_levels)
        self.binary = self.num_levels == 2
        self.model = pixelcnn.build_pixelcnn(
            config.model.name, 1 if self.binary else self.num_levels, channels=a.channels,
            num_layers=a.num_layers, kernel_size=a.kernel_size,
            first_kernel_size=a.first_kernel_size, head_channels=a.head_channels)
        self.num_dims = math.prod(self.data_shape)
        self.temperature = float(config.sampler.temperature)
        self.top_k = int(config.sampler.top_k)
        self.tx = build_optimizer(config.optim, config.train.num_steps)
        self.ema_decay = config.optim.ema_decay

    def init(self, rng) -> TrainState:
        params = self.model.init(rng, jnp.zeros((1,) + self.data_shape, jnp.float32))["params"]
        return TrainState.create(params, self.tx)

    # -- data <-> discrete values ---------------------------------------------------------

    def discretize(self, x, rng=None):
        """Images in [-1, 1] -> the values the model predicts: {0, 1} float drawn with
        ``rng`` (binary; the fixed evaluation key when None), else int32 levels."""
        if self.binary:
            from jaxgen.vae import binarize
            key = jax.random.key(EVAL_BINARIZATION_SEED) if rng is None else rng
            return binarize(key, x)
        top = self.num_levels - 1
        return jnp.clip(jnp.round((x + 1.0) * 0.5 * top), 0, top).astype(jnp.int32)

    def to_data(self, values):
        """Discrete values -> images in [-1, 1] (also the model's input)."""
        return values.astype(jnp.float32) * (2.0 / (self.num_levels - 1)) - 1.0

    # -- the model as callables of jaxgen.autoregressive ---------------------------------

    def logits(self, params, values):
        """Logits of every p(x_i | x_<i): (B, H, W, 1) for binary data, else
        (B, H, W, 1, L)."""
        out = self.model.apply({"params": params}, self.to_data(values))
        return out[..., 0] if self.binary else out

    def nll(self, params, values):
        """Exact -log p(x) in nats, (B,)."""
        logits = self.logits(params, values)
        if self.binary:
            return ar.bernoulli_nll(logits, values)
        return ar.categorical_nll(logits, values)

    def logits_fn(self, params):
        """``x (B, H, W, 1) int -> (B, H, W, 1, K)`` categorical logits for the sampler."""
        def fn(values):
            logits = self.logits(params, values)
            return ar.binary_to_categorical(logits) if self.binary else logits
        return fn

    # -- training and evaluation ----------------------------------------------------------

    def train_step(self, state: TrainState, batch, rng):
        """One optimizer step on the NLL. Returns (state, metrics): loss (nats per dim),
        nll (nats per image), bits_per_dim, grad_norm."""
        values = self.discretize(batch["x"], jax.random.fold_in(rng, 0))

        def loss_fn(params):
            nll = jnp.mean(self.nll(params, values))
            return nll / self.num_dims, nll

        (loss, nll), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = state.apply_gradients(grads, self.tx, self.ema_decay)
        return state, {"loss": loss, "nll": nll, "bits_per_dim": ar.bits_per_dim(
            nll, self.num_dims), "grad_norm": optax.global_norm(grads)}

    def evaluate(self, params, batch, rng):
        """Exact test NLL: ``nll`` (nats per image), ``bits_per_dim`` and ``loss`` (nats
        per dim), means over the batch (binary data: the fixed evaluation binarization)."""
        del rng
        nll = jnp.mean(self.nll(params, self.discretize(batch["x"])))
        return {"loss": nll / self.num_dims, "nll": nll,
                "bits_per_dim": ar.bits_per_dim(nll, self.num_dims)}

    def sample_values(self, params, rng, num: int, init=None, start: int = 0):
        """Ancestral samples as discrete values (num, H, W, 1) int32 (``init``/``start``:
        complete the positions from ``start`` on of given images)."""
        return ar.sample(self.logits_fn(params), rng, (num,) + self.data_shape,
                         temperature=self.temperature, top_k=self.top_k, init=init,
                         start=start)

    def sample(self, params, rng, num: int):
        """``num`` samples in [-1, 1], (num, H, W, 1): H * W sequential network passes."""
        return self.to_data(self.sample_values(params, rng, num))
