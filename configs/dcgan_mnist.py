"""DCGAN (Radford et al. 2016) on MNIST: the non-saturating loss, Adam (2e-4, beta1 0.5)
for both players, batch norm in both, z of 64 dims; a small generator 7x7x64 -> 14x14x32
-> 28x28x1 and discriminator 28 -> 14 (32 ch) -> 7 (64 ch) -> linear read-out. The other
GAN MNIST configs (wgan_gp_, lsgan_, hinge_, cgan_mnist) derive from this one.

MNIST here is the real test split in TFDS format (train on 90%, evaluate on 10%);
``data.data_dir`` is the folder that holds ``mnist/`` (from the repository root of this
checkout: ../shared/tfds).

Launch:
  python -m jaxgen.main --config=configs/dcgan_mnist.py --workdir=runs/dcgan_mnist \
      --config.data.data_dir=../shared/tfds
  python -m jaxgen.main --config=configs/dcgan_mnist.py --workdir=runs/gan_minimax \
      --config.data.data_dir=../shared/tfds --config.gan.loss=minimax
"""

from configs import base


def get_config(arg: str | None = None):
    if arg not in (None, "", "smoke"):
        raise ValueError(f"unknown config argument {arg!r}; allowed: 'smoke' or nothing")
    c = base.get_config()
    c.family = "gan"
    c.data.name = "mnist"
    c.data.split = "test[:90%]"
    c.data.eval_split = "test[90%:]"
    c.gan.loss = "non_saturating"
    c.gan.arch = "dcgan"
    c.gan.latent_dim = 64
    c.gan.g_channels = (64, 32)
    c.gan.d_channels = (32, 64)
    c.gan.d_norm = "batch"
    c.gan.d_learning_rate = 2e-4
    c.gan.d_b1, c.gan.d_b2 = 0.5, 0.999
    c.optim.learning_rate = 2e-4       # the generator's
    c.optim.b1, c.optim.b2 = 0.5, 0.999
    c.optim.warmup_steps = 0
    c.optim.grad_clip = 0.0
    c.optim.ema_decay = 0.999
    c.train.num_steps = 5000
    c.train.batch_size = 64
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.train.sample_every = 1000
    c.sampler.num_samples = 100        # a 10x10 grid
    if arg == "smoke":
        c.train.num_steps = 4
        c.train.batch_size = 8
        c.train.log_every = 2
        c.train.checkpoint_every = 2
        c.train.sample_every = 0
        c.gan.latent_dim = 8
        c.gan.g_channels = (8, 4)
        c.gan.d_channels = (4, 8)
        c.sampler.num_samples = 4
    return c
