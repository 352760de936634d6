"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017) on MNIST: two stride-2 3x3
convolutions 28 -> 14 -> 7 (32, 64 channels), a residual block, 1x1 to D = 16; a codebook
of K = 64 codes updated by exponential moving averages (decay 0.99, App. A.1), codes
whose running count falls below 1 restarted at a random encoding (Dhariwal et al. 2020);
commitment beta = 0.25 (the paper's); the mirror decoder; squared error on [-1, 1] pixels.
Each image becomes a 7 x 7 grid of codes, 49 tokens for the prior
(configs/vqvae_prior_mnist.py).

MNIST here is the real test split in TFDS format (train on 90%, evaluate on 10%).

Arguments: '' (EMA codebook), 'loss' (the codebook trained by ||sg[z_e] - e||^2, Eq. 3),
'smoke' (seconds).

Launch:
  python -m jaxgen.main --config=configs/vqvae_mnist.py --workdir=runs/vqvae_mnist \
      --config.data.data_dir=../shared/tfds
  python -m jaxgen.main --config=configs/vqvae_mnist.py --workdir=runs/vqvae_mnist \
      --config.data.data_dir=../shared/tfds --mode=eval      # perplexity, dead codes
"""

from configs import base

ARGS = (None, "", "loss", "smoke")


def get_config(arg: str | None = None):
    if arg not in ARGS:
        raise ValueError(f"unknown config argument {arg!r}; allowed: 'loss', 'smoke' or "
                         "nothing")
    c = base.get_config()
    c.family = "vqvae"
    c.data.name = "mnist"
    c.data.split = "test[:90%]"
    c.data.eval_split = "test[90%:]"
    c.model.name = "vqvae"
    c.vq.num_codes = 64
    c.vq.code_dim = 16
    c.vq.channels = (32, 64)
    c.vq.num_res_blocks = 1
    c.vq.commitment = 0.25
    c.vq.codebook_update = "loss" if arg == "loss" else "ema"
    c.vq.ema_decay = 0.99
    # codes with fewer than one expected assignment per batch restart at a random encoding
    c.vq.restart_threshold = 0.0 if arg == "loss" else 1.0
    c.train.batch_size = 64
    c.train.num_steps = 2000
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.train.eval_batches = 15            # 960 of the 1,000 held-out images
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 100
    c.optim.final_lr_fraction = 0.1
    c.optim.ema_decay = 0.99
    c.sampler.num_samples = 64
    c.eval.num_samples = 0
    if arg == "smoke":
        c.train.num_steps = 3
        c.train.batch_size = 4
        c.train.log_every = 1
        c.train.checkpoint_every = 3
        c.train.eval_batches = 1
        c.vq.num_codes = 8
        c.vq.code_dim = 4
        c.vq.channels = (4, 8)
        c.sampler.num_samples = 4
    return c
