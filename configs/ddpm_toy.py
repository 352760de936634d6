"""DDPM (Ho et al. 2020) on a 2-D toy distribution (8 Gaussians on a circle) with the
time-conditioned MLP: eps prediction, linear betas, T = 1000, ancestral sampling.
Trains in seconds on a CPU; samples.png is a scatter plot of 1000 samples.

Launch:
  python -m jaxgen.main --config=configs/ddpm_toy.py --workdir=runs/ddpm_toy
  python -m jaxgen.main --config=configs/ddpm_toy.py --workdir=runs/ddpm_moons \
      --config.data.name=toy:moons
"""

from configs import base


def get_config(arg: str | None = None):
    if arg not in (None, "", "smoke"):
        raise ValueError(f"unknown config argument {arg!r}; allowed: 'smoke' or nothing")
    c = base.get_config()
    c.data.name = "toy:8gaussians"
    c.model.name = "mlp"
    c.model.hidden_dim = 128
    c.model.num_layers = 3
    c.train.num_steps = 3000
    c.train.batch_size = 256
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.train.eval_batches = 8
    c.optim.learning_rate = 2e-3
    c.optim.schedule = "cosine"
    c.optim.final_lr_fraction = 0.05
    c.optim.ema_decay = 0.99           # a window of ~100 steps suits runs of a few thousand
    c.sampler.clip_x0 = 0.0            # the toy data are not confined to [-1, 1]
    c.sampler.num_samples = 1000
    if arg == "smoke":
        c.train.num_steps = 4
        c.train.batch_size = 16
        c.train.log_every = 2
        c.train.checkpoint_every = 2
        c.model.hidden_dim = 16
        c.diffusion.num_timesteps = 20
        c.sampler.num_samples = 8
    return c
