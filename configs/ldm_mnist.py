"""Latent diffusion (Rombach et al. 2022) on MNIST: DDPM (eps, linear betas, T = 1000) in
the 7 x 7 x 4 latent space of the KL autoencoder of ``configs/autoencoder_mnist.py``,
latents scaled by 1 / their std; a one-level UNet (7 is odd: no downsampling) with
self-attention (64 channels); DDIM with 100 steps, no x_0 clipping (latents are unbounded); samples
are decoded to images.

Train the autoencoder first, then point ``latent.autoencoder_workdir`` at it:

Launch:
  python -m jaxgen.main --config=configs/autoencoder_mnist.py \
      --workdir=runs/autoencoder_mnist --config.data.data_dir=../shared/tfds
  python -m jaxgen.main --config=configs/ldm_mnist.py --workdir=runs/ldm_mnist \
      --config.data.data_dir=../shared/tfds \
      --config.latent.autoencoder_workdir=runs/autoencoder_mnist
  python -m jaxgen.main --config=configs/ldm_mnist.py:smoke --workdir=/tmp/smoke \
      --config.data.data_dir=../shared/tfds \
      --config.latent.autoencoder_workdir=runs/autoencoder_mnist
"""

from configs import ddpm_mnist


def get_config(arg: str | None = None):
    c = ddpm_mnist.get_config(arg)
    c.latent.autoencoder_workdir = "runs/autoencoder_mnist"
    c.model.block_channels = (64,)
    c.model.attention = (True,)
    c.model.head_dim = 16
    c.sampler.method = "ddim"
    c.sampler.num_steps = 100
    c.sampler.clip_x0 = 0.0
    # ~0.3 s per step on 2 CPU cores: a few thousand steps fit in a coffee break.
    c.train.num_steps = 3000
    c.train.batch_size = 64
    c.train.checkpoint_every = 1000
    c.train.sample_every = 0
    c.optim.warmup_steps = 200
    c.optim.learning_rate = 1e-3
    c.optim.ema_decay = 0.995
    if arg == "smoke":
        c.model.block_channels = (16,)
        c.model.head_dim = 8
        c.diffusion.num_timesteps = 20
        c.sampler.num_steps = 4
        c.train.num_steps = 4
        c.train.batch_size = 8
    return c
