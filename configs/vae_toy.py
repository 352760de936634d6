"""A VAE on a 2-D toy distribution (8 Gaussians on a circle): 2-d latent, Gaussian
decoder with learned variance, 2 x 128 SiLU MLPs. Learns in seconds on a CPU;
samples.png is a scatter plot of decoder means (the learned variance is not added).

Launch:
  python -m jaxgen.main --config=configs/vae_toy.py --workdir=runs/vae_toy
  python -m jaxgen.main --config=configs/vae_toy.py --workdir=runs/vae_toy_iwae \
      --config.vae.num_samples=8
"""

from configs import base


def get_config(arg: str | None = None):
    if arg not in (None, "", "smoke"):
        raise ValueError(f"unknown config argument {arg!r}; allowed: 'smoke' or nothing")
    c = base.get_config()
    c.family = "vae"
    c.data.name = "toy:8gaussians"
    c.model.name = "vae_mlp"
    c.vae.likelihood = "gaussian"
    c.vae.learn_variance = True
    c.vae.latent_dim = 2
    c.vae.hidden_dims = (128, 128)
    c.vae.activation = "silu"
    c.vae.eval_num_samples = 100
    c.train.num_steps = 2000
    c.train.batch_size = 256
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.train.eval_batches = 8
    c.optim.learning_rate = 2e-3
    c.optim.schedule = "cosine"
    c.optim.final_lr_fraction = 0.05
    c.optim.grad_clip = 0.0
    c.optim.ema_decay = 0.99
    c.sampler.num_samples = 1000
    if arg == "smoke":
        c.train.num_steps = 4
        c.train.batch_size = 16
        c.train.log_every = 2
        c.train.checkpoint_every = 2
        c.vae.hidden_dims = (16,)
        c.vae.eval_num_samples = 4
        c.sampler.num_samples = 8
    return c
