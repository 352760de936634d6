"""DDPM (Ho et al. 2020) on scikit-learn's bundled 8x8 digits: the main job of `make demo`.

Launch:
  python -m jaxgen.main --config=configs/ddpm_digits.py --workdir=runs/demo
  python -m jaxgen.main --config=configs/ddpm_digits.py:smoke --workdir=/tmp/smoke
"""

from configs import base


def get_config(arg: str | None = None):
    c = base.get_config()
    # ~13 steps/s on 2 CPU cores: 3000 steps plus sampling fit in about five minutes.
    c.train.num_steps = 3000
    c.train.batch_size = 32
    c.train.checkpoint_every = 500
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.final_lr_fraction = 0.05
    c.optim.ema_decay = 0.995
    if arg == "smoke":
        c.train.num_steps = 4
        c.train.batch_size = 8
        c.train.log_every = 2
        c.train.checkpoint_every = 2
        c.model.block_channels = (8, 16)
        c.model.layers_per_block = 1   # one residual block per level: half the compile time
        c.diffusion.num_timesteps = 20
        c.sampler.num_samples = 4
    elif arg:
        raise ValueError(f"unknown config argument {arg!r}; allowed: 'smoke' or nothing")
    return c
