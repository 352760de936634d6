"""DDPM (Ho et al. 2020) on MNIST: eps prediction, linear betas, T = 1000, ancestral
sampling; a (32, 64, 64) UNet, 28 -> 14 -> 7, self-attention at 14x14. The other MNIST
configs derive from this one.

MNIST here is the real test split in TFDS format (train on 90%, evaluate on 10%);
``data.data_dir`` is the folder that holds ``mnist/`` (from the repository root of this
checkout: ../shared/tfds).

Launch:
  python -m jaxgen.main --config=configs/ddpm_mnist.py --workdir=runs/ddpm_mnist \
      --config.data.data_dir=../shared/tfds
  python -m jaxgen.main --config=configs/ddpm_mnist.py:smoke --workdir=/tmp/smoke \
      --config.data.data_dir=../shared/tfds
"""

from configs import base


def get_config(arg: str | None = None):
    if arg not in (None, "", "smoke"):
        raise ValueError(f"unknown config argument {arg!r}; allowed: 'smoke' or nothing")
    c = base.get_config()
    c.data.name = "mnist"
    c.data.split = "test[:90%]"
    c.data.eval_split = "test[90%:]"
    c.model.block_channels = (32, 64, 64)
    c.model.attention = (False, True, False)
    c.train.num_steps = 20_000
    c.train.batch_size = 128
    c.train.checkpoint_every = 2000
    c.train.sample_every = 5000
    c.optim.learning_rate = 5e-4
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 500
    c.optim.final_lr_fraction = 0.05
    c.sampler.num_samples = 100        # a 10x10 grid
    if arg == "smoke":
        c.train.num_steps = 4
        c.train.batch_size = 8
        c.train.log_every = 2
        c.train.checkpoint_every = 2
        c.train.sample_every = 0
        c.model.block_channels = (8, 16)   # two levels compile faster than three
        c.model.attention = (False, True)
        c.diffusion.num_timesteps = 20
        c.sampler.num_samples = 4
    return c
