"""An autoregressive transformer prior over the 7 x 7 code grids of a trained VQ-VAE
(configs/vqvae_mnist.py): the lectures' "autoregressive models strike back" (van den Oord
et al. 2017, Sec. 3.3; Esser, Rombach & Ommer 2021). The VQ-VAE stays frozen; images are
encoded to codes, the transformer learns p(c) = prod_i p(c_i | c_<i) by cross-entropy, and
samples are code grids (49 sequential steps) decoded by the VQ-VAE.

``prior.vqvae_workdir`` must name the trained VQ-VAE run.

Arguments: '' or 'smoke' (seconds; needs a VQ-VAE run too, e.g. of vqvae_mnist.py:smoke).

Launch:
  python -m jaxgen.main --config=configs/vqvae_mnist.py --workdir=runs/vqvae_mnist \
      --config.data.data_dir=../shared/tfds
  python -m jaxgen.main --config=configs/vqvae_prior_mnist.py --workdir=runs/vqvae_prior \
      --config.prior.vqvae_workdir=runs/vqvae_mnist --config.data.data_dir=../shared/tfds
"""

from configs import base

ARGS = (None, "", "smoke")


def get_config(arg: str | None = None):
    if arg not in ARGS:
        raise ValueError(f"unknown config argument {arg!r}; allowed: 'smoke' or nothing")
    c = base.get_config()
    c.family = "vq_prior"
    c.data.name = "mnist"
    c.data.split = "test[:90%]"
    c.data.eval_split = "test[90%:]"
    c.model.name = "ar_transformer"
    c.prior.vqvae_workdir = "runs/vqvae_mnist"
    c.prior.num_layers = 4
    c.prior.embed_dim = 128
    c.prior.num_heads = 4
    c.prior.mlp_ratio = 4
    c.train.batch_size = 64
    c.train.num_steps = 2000
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.train.eval_batches = 15
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 100
    c.optim.final_lr_fraction = 0.1
    c.optim.ema_decay = 0.99
    c.sampler.num_samples = 64
    c.sampler.temperature = 1.0
    c.sampler.top_k = 0
    c.eval.num_samples = 0
    if arg == "smoke":
        c.train.num_steps = 3
        c.train.batch_size = 4
        c.train.log_every = 1
        c.train.checkpoint_every = 3
        c.train.eval_batches = 1
        c.prior.num_layers = 1
        c.prior.embed_dim = 8
        c.prior.num_heads = 2
        c.prior.mlp_ratio = 2
        c.sampler.num_samples = 4
    return c
