"""The VAE family for the generic loop: init, train_step, sample, evaluate, and pictures.

Trains the architectures of ``jaxgen.nets.vae`` on the bounds of ``jaxgen.vae``: the ELBO
(Kingma & Welling 2014; weighted by ``vae.beta`` for a beta-VAE), or the IWAE bound L_k
(Burda et al. 2016) with ``vae.num_samples = k > 1``.

Data. Batches hold images in [-1, 1] (or toy points). The likelihood decides what the
model sees:

* ``'bernoulli'``: binary images. Training draws x_bin ~ Bernoulli((x + 1) / 2) afresh
  every step from the step's key (dynamic binarization, Burda et al.'s protocol);
  ``evaluate`` binarizes with the fixed key ``EVAL_BINARIZATION_SEED`` (example b of a
  batch always gets the same binary image), so evaluations of a batch are comparable.
* ``'gaussian'``: the values as they are (fixed or learned variance).
* ``'discretized_logistic'``: the 8-bit images as they are, on their grid.

Toy points are continuous and unbounded, so only 'gaussian' accepts them; ``check_data``
refuses the others before anything is compiled. Outside ``jit`` the likelihoods check
the values themselves (``jaxgen.vae.likelihoods``).
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgen import vae
from jaxgen.core import xla_options
from jaxgen.errors import ConfigError
from jaxgen.nets import vae as vae_nets
from jaxgen.train.optim import build_optimizer
from jaxgen.train.state import TrainState

# The fixed binarization of evaluation batches ('bernoulli').
EVAL_BINARIZATION_SEED = 0xB1_0A7E
# Streams folded into a step's key.
_BINARIZE, _LATENT = 0, 1


def validate_config(config: ml_collections.ConfigDict) -> None:
    """The sections of the VAE family: ``model.name``, ``vae`` and ``sampler.num_samples``."""
    from jaxgen.train.validation import choice, get_field, number, positive_int

    arch = choice(config, "model.name", vae_nets.ARCHITECTURES)
    likelihood = choice(config, "vae.likelihood", vae.LIKELIHOODS)
    if not isinstance(get_field(config, "vae.learn_variance"), bool):
        raise ConfigError("vae.learn_variance", config.vae.learn_variance, "must be True or False")
    if config.vae.learn_variance and likelihood != "gaussian":
        raise ConfigError("vae.learn_variance", True, f"applies to vae.likelihood='gaussian' "
                          f"only ({likelihood!r} has no variance to learn); must be False")
    number(config, "vae.decoder_std", 0.0, 1e6, lo_open=True)
    positive_int(config, "vae.latent_dim")
    _dims(config, "vae.hidden_dims", allow_empty=arch == "vae_mlp")
    if arch == "vae_conv":
        _dims(config, "vae.conv_channels", allow_empty=False)
    if arch == "vae_hierarchical":
        positive_int(config, "vae.top_latent_dim")
        _dims(config, "vae.top_hidden_dims", allow_empty=True)
    choice(config, "vae.activation", vae_nets.ACTIVATIONS)
    beta = number(config, "vae.beta", 0.0, 1e6)
    k = positive_int(config, "vae.num_samples")
    if k > 1 and beta != 1:
        raise ConfigError("vae.beta", beta, f"must be 1 with vae.num_samples={k} (the IWAE "
                          "bound has no separate KL term to weight)")
    positive_int(config, "vae.eval_num_samples", minimum=0)
    positive_int(config, "vae.eval_chunk_size")
    positive_int(config, "sampler.num_samples")


def _dims(config, field: str, allow_empty: bool) -> tuple:
    from jaxgen.train.validation import get_field

    v = get_field(config, field)
    ok = isinstance(v, (tuple, list)) and (allow_empty or len(v) > 0) and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in v)
    if not ok:
        raise ConfigError(field, v, f"must be a {'' if allow_empty else 'non-empty '}tuple of "
                          "positive integers")
    return tuple(v)


def check_data(config: ml_collections.ConfigDict, example_shape) -> None:
    """The data must suit the likelihood (binarizable or 8-bit images for 'bernoulli' and
    'discretized_logistic') and the architecture (images whose size the conv levels
    divide for 'vae_conv')."""
    shape = tuple(int(d) for d in example_shape)
    images = len(shape) == 3 and not config.data.name.startswith("toy:")
    likelihood = config.vae.likelihood
    if likelihood != "gaussian" and not images:
        what = ("binary data (images in [-1, 1], binarized per step)" if likelihood == "bernoulli"
                else "8-bit images on the grid -1 + 2k/255")
        raise ConfigError("vae.likelihood", likelihood, f"needs {what}, but data.name="
                          f"{config.data.name!r} gives continuous examples of shape {shape}; "
                          "use 'gaussian'")
    if config.model.name == "vae_conv":
        if len(shape) != 3:
            raise ConfigError("model.name", "vae_conv", f"needs images (H, W, C), but data.name="
                              f"{config.data.name!r} gives examples of shape {shape}; use "
                              "'vae_mlp'")
        f = 2 ** len(config.vae.conv_channels)
        if shape[0] % f or shape[1] % f:
            raise ConfigError("vae.conv_channels", tuple(config.vae.conv_channels),
                              f"{len(config.vae.conv_channels)} stride-2 levels downsample by "
                              f"{f}, which must divide the image size {shape[0]}x{shape[1]}")


class VAEFamily:
    """VAE / IWAE / beta-VAE training of an MLP, convolutional or two-layer VAE.

    Args:
      config: the run config (sections ``model`` (name), ``vae``, ``sampler``, ``optim``,
        ``train``).
      data_shape: shape of one example, e.g. (28, 28, 1) or (2,).
    """

    name = "vae"
    validate_config = staticmethod(validate_config)
    check_data = staticmethod(check_data)

    def __init__(self, config: ml_collections.ConfigDict, data_shape):
        self.config = config
        self.data_shape = tuple(int(d) for d in data_shape)
        v = config.vae
        self.likelihood = v.likelihood
        self.learned_variance = bool(v.learn_variance) and v.likelihood == "gaussian"
        self.fixed_logvar = (2.0 * math.log(v.decoder_std)
                             if v.likelihood == "gaussian" and not self.learned_variance else None)
        self.beta = float(v.beta)
        self.num_samples = int(v.num_samples)
        self.hierarchical = config.model.name == "vae_hierarchical"
        self.latent_shape = (v.top_latent_dim if self.hierarchical else v.latent_dim,)
        self.model = vae_nets.build_vae(
            config.model.name, self.data_shape,
            vae.num_decoder_params(v.likelihood, self.learned_variance),
            latent_dim=v.latent_dim, hidden_dims=v.hidden_dims, activation=v.activation,
            conv_channels=v.conv_channels, top_latent_dim=v.top_latent_dim,
            top_hidden_dims=v.top_hidden_dims)
        self.num_dims = math.prod(self.data_shape)
        self.tx = build_optimizer(config.optim, config.train.num_steps)
        self.ema_decay = config.optim.ema_decay

    def init(self, rng) -> TrainState:
        params = self.model.init(rng, jnp.zeros((1,) + self.data_shape, jnp.float32))["params"]
        return TrainState.create(params, self.tx)

    # -- the model as callables of jaxgen.vae --------------------------------------------

    def _apply(self, params, method):
        return lambda *a: self.model.apply({"params": params}, *a, method=method)

    def parts(self, params) -> dict:
        """The keyword arguments of ``vae.elbo`` / ``vae.log_weight_fn`` for ``params``:
        ``encode``, ``log_likelihood`` and ``priors``."""
        decode = self._apply(params, "decode")

        def log_likelihood(x, z):
            return vae.decoder_log_likelihood(self.likelihood, x, decode(z),
                                              logvar=self.fixed_logvar)

        encode = self._apply(params, "encode")
        if self.hierarchical:
            return {"encode": [encode, self._apply(params, "encode_top")],
                    "priors": [self._apply(params, "prior_bottom")],
                    "log_likelihood": log_likelihood}
        return {"encode": encode, "priors": [], "log_likelihood": log_likelihood}

    def model_input(self, x, rng):
        """What the model sees of a batch ``x`` in [-1, 1]: binary images drawn with
        ``rng`` for 'bernoulli', ``x`` itself otherwise."""
        return vae.binarize(rng, x) if self.likelihood == "bernoulli" else x

    def to_data(self, x):
        """The model's space -> the data's: {0, 1} or [0, 1] -> [-1, 1] for 'bernoulli';
        images are clipped to [-1, 1]."""
        if self.likelihood == "bernoulli":
            return 2.0 * x - 1.0
        return jnp.clip(x, -1.0, 1.0) if len(self.data_shape) == 3 else x

    def eval_input(self, x):
        """``x`` with the fixed evaluation binarization ('bernoulli')."""
        return self.model_input(x, jax.random.key(EVAL_BINARIZATION_SEED))

    # -- training and evaluation ----------------------------------------------------------

    def loss(self, params, batch, rng):
        """-(ELBO objective) or -L_k, averaged over the batch. Returns (loss, metrics)."""
        x = self.model_input(batch["x"], jax.random.fold_in(rng, _BINARIZE))
        key = jax.random.fold_in(rng, _LATENT)
        p = self.parts(params)
        if self.num_samples == 1:
            t = vae.elbo(x, key, p["encode"], p["log_likelihood"], priors=p["priors"],
                         beta=self.beta)
            return -jnp.mean(t.objective), {"elbo": jnp.mean(t.elbo),
                                            "reconstruction": jnp.mean(t.reconstruction),
                                            "kl": jnp.mean(t.kl)}
        log_w = vae.log_weights(vae.log_weight_fn(x, p["encode"], p["log_likelihood"],
                                                  priors=p["priors"]), key, self.num_samples)
        bound = vae.log_mean_exp(log_w)
        return -jnp.mean(bound), {"iwae_bound": jnp.mean(bound), "elbo": jnp.mean(log_w)}

    def train_step(self, state: TrainState, batch, rng):
        """One optimizer step. Returns (state, metrics): loss, elbo (and its terms, or the
        IWAE bound), grad_norm."""
        (loss, metrics), grads = jax.value_and_grad(self.loss, has_aux=True)(
            state.params, batch, rng)
        state = state.apply_gradients(grads, self.tx, self.ema_decay)
        return state, {"loss": loss, **metrics, "grad_norm": optax.global_norm(grads)}

    def log_likelihood(self, params, x, rng, num_samples: int, chunk_size: int = 100):
        """IWAE estimate of log p(x) with ``num_samples`` samples in chunks, (B,) nats;
        ``x`` as the model sees it (``eval_input`` / ``model_input``)."""
        p = self.parts(params)
        log_weight = vae.log_weight_fn(x, p["encode"], p["log_likelihood"], priors=p["priors"])
        return vae.log_likelihood_estimate(log_weight, rng, num_samples, chunk_size=chunk_size)

    def evaluate(self, params, batch, rng):
        """Negative ELBO (``loss``) and its terms on ``batch``, means over the batch; with
        ``vae.eval_num_samples = k > 0`` also the IWAE estimate ``nll`` = -log p(x) (nats
        per example) and ``bits_per_dim``."""
        x = self.eval_input(batch["x"])
        p = self.parts(params)
        t = vae.elbo(x, jax.random.fold_in(rng, 0), p["encode"], p["log_likelihood"],
                     priors=p["priors"])
        out = {"loss": -jnp.mean(t.elbo), "elbo": jnp.mean(t.elbo),
               "reconstruction": jnp.mean(t.reconstruction), "kl": jnp.mean(t.kl)}
        k = self.config.vae.eval_num_samples
        if k:
            nll = -jnp.mean(self.log_likelihood(params, x, jax.random.fold_in(rng, 1), k,
                                                self.config.vae.eval_chunk_size))
            out.update(nll=nll, bits_per_dim=vae.bits_per_dim(nll, self.num_dims))
        return out

    # -- sampling and pictures -------------------------------------------------------------

    def decode_mean(self, params, z):
        """E[x|z] in the data's space ([-1, 1] for images)."""
        out = self._apply(params, "decode")(z)
        return self.to_data(vae.decoder_mean(self.likelihood, out,
                                             learned_variance=self.learned_variance))

    def sample(self, params, rng, num: int):
        """Decodes z ~ p(z) (z_2 ~ N(0, I), z_1 ~ p(z_1|z_2) for the hierarchy): the
        decoder mean (for 'bernoulli' the pixel probabilities mapped to [-1, 1], not binary
        noise). Returns (num, *data_shape)."""
        z = vae.sample_latents(rng, num, self.latent_shape, priors=self.parts(params)["priors"])
        return self.decode_mean(params, z)

    def encode_mean(self, params, x):
        """The posterior mean of z (of z_1 for the hierarchy) of model inputs ``x``."""
        return self._apply(params, "encode")(x)[0]

    def reconstruct(self, params, x):
        """(model input shown in [-1, 1], decoded posterior mean) for a batch ``x`` in
        [-1, 1] (binarized with the evaluation key for 'bernoulli')."""
        xin = self.eval_input(x)
        return self.to_data(xin), self.decode_mean(params, self.encode_mean(params, xin))

    def interpolate(self, params, x_a, x_b, num_steps: int = 10):
        """Decodes (1 - t) mu(x_a) + t mu(x_b) for num_steps t in [0, 1]: (B, num_steps, ...)."""
        za = self.encode_mean(params, self.eval_input(x_a))
        zb = self.encode_mean(params, self.eval_input(x_b))
        t = jnp.linspace(0.0, 1.0, num_steps)[:, None, None]
        z = ((1.0 - t) * za[None] + t * zb[None]).reshape((-1, za.shape[-1]))
        out = self.decode_mean(params, z).reshape((num_steps, za.shape[0]) + self.data_shape)
        return jnp.swapaxes(out, 0, 1)

    def latent_grid(self, params, size: int = 20):
        """For a 2-D latent: decodes z on a size x size grid of the prior's quantiles
        5%..95% per axis (Kingma & Welling 2014, Fig. 4). Returns (size * size, ...),
        row-major with z_2 decreasing down the rows."""
        if self.latent_shape != (2,) or self.hierarchical:
            raise ValueError(f"latent_grid needs a one-layer VAE with a 2-D latent, this one "
                             f"has latent shape {self.latent_shape}")
        q = jax.scipy.special.ndtri(jnp.linspace(0.05, 0.95, size))
        zx, zy = jnp.meshgrid(q, q[::-1])
        return self.decode_mean(params, jnp.stack([zx.ravel(), zy.ravel()], axis=-1))


def save_pictures(family: VAEFamily, params, images, out_dir: str, rng, *,
                  num_samples: int = 100, prefix: str = "") -> list[str]:
    """Writes the VAE's pictures as PNGs into ``out_dir`` and returns their paths.

    ``{prefix}samples.png`` (decoded prior samples), ``{prefix}reconstructions.png``
    (rows of inputs, each followed by a row of their reconstructions),
    ``{prefix}interpolation.png`` (8 rows, image i to image i + 8: the input, 10 decoded
    points on the line between the posterior means, the other input) and, for a 2-D latent,
    ``{prefix}manifold.png`` (the decoded 20 x 20 grid of ``latent_grid``).

    Args:
      images: at least 20 (N, H, W, C) images in [-1, 1] (e.g. test images).
    """
    from jaxgen import viz

    images = np.asarray(images)
    if images.ndim != 4 or len(images) < 20:
        raise ValueError(f"images must be at least 20 images (N, H, W, C), got {images.shape}")
    path = lambda name: os.path.join(out_dir, prefix + name)  # noqa: E731
    jit = xla_options.jit
    written = [viz.save_grid(np.asarray(jit(family.sample, static_argnums=2)(
        params, rng, num_samples)), path("samples.png"), nrow=10)]
    shown, recon = (np.asarray(a) for a in jit(family.reconstruct)(params, images[:20]))
    rows = np.concatenate([shown[:10], recon[:10], shown[10:20], recon[10:20]])
    written.append(viz.save_grid(rows, path("reconstructions.png"), nrow=10))
    a, b = images[:8], images[8:16]
    between = np.asarray(jit(family.interpolate)(params, a, b))
    strip = np.concatenate([shown[:8, None], between, shown[8:16, None]], axis=1)
    written.append(viz.save_grid(strip.reshape((-1,) + strip.shape[2:]), path(
        "interpolation.png"), nrow=strip.shape[1]))
    if family.latent_shape == (2,) and not family.hierarchical:
        written.append(viz.save_grid(np.asarray(jit(family.latent_grid, static_argnums=1)(
            params, 20)), path("manifold.png"), nrow=20))
    return written
