"""A GAN on 2-D toy data with MLP players like those of the mode-collapse benchmarks
(Metz et al. 2017; VEEGAN, Srivastava et al. 2017): generator z (2-D) -> 2 hidden layers
of 128 ReLU -> linear output; discriminator 2 hidden layers of 128 ReLU -> logit.
Non-saturating loss, Adam (1e-3, beta1 0.5) for both players. ``LOSS_SETTINGS`` holds
the per-loss changes that experiments/gan_mode_collapse.py applies (``with_loss``).

Launch:
  python -m jaxgen.main --config=configs/gan_toy.py --workdir=runs/gan_toy
  python -m jaxgen.main --config=configs/gan_toy.py --workdir=runs/gan_toy_grid \
      --config.data.name=toy:25gaussians --config.gan.loss=wgan_gp --config.gan.n_critic=5
"""

from configs import base

# Per-loss changes for the MLP players, after the losses' papers: WGAN (Arjovsky et al.
# 2017: critic RMSProp 5e-5, c = 0.01, n_critic 5; the generator keeps Adam 1e-3) and
# WGAN-GP (Gulrajani et al. 2017: n_critic 5, beta2 0.9; the learning rate stays 1e-3 and
# beta1 0.5 rather than the paper's 1e-4 and 0). The other losses use the defaults.
LOSS_SETTINGS = {
    "minimax": {},
    "non_saturating": {},
    "lsgan": {},
    "hinge": {},
    "wgan_gp": {"gan.n_critic": 5, "gan.d_b2": 0.9, "optim.b2": 0.9},
    "wgan": {"gan.n_critic": 5, "gan.d_optimizer": "rmsprop", "gan.d_learning_rate": 5e-5,
             "gan.clip_value": 0.01},
}


def with_loss(c, loss: str):
    """``c`` with ``gan.loss = loss`` and that loss's LOSS_SETTINGS."""
    c.gan.loss = loss
    for field, value in LOSS_SETTINGS[loss].items():
        section, name = field.split(".")
        c[section][name] = value
    return c


def get_config(arg: str | None = None):
    if arg not in (None, "", "smoke"):
        raise ValueError(f"unknown config argument {arg!r}; allowed: 'smoke' or nothing")
    c = base.get_config()
    c.family = "gan"
    c.data.name = "toy:8gaussians"
    c.gan.arch = "mlp"
    c.gan.loss = "non_saturating"
    c.gan.latent_dim = 2
    c.gan.hidden_dim = 128
    c.gan.num_layers = 2
    c.gan.d_learning_rate = 1e-3
    c.gan.d_b1, c.gan.d_b2 = 0.5, 0.999
    c.optim.learning_rate = 1e-3
    c.optim.b1, c.optim.b2 = 0.5, 0.999
    c.optim.warmup_steps = 0
    c.optim.grad_clip = 0.0
    c.optim.ema_decay = 0.99
    c.train.num_steps = 5000
    c.train.batch_size = 256
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.train.eval_batches = 8
    c.sampler.num_samples = 2500
    if arg == "smoke":
        c.train.num_steps = 4
        c.train.batch_size = 16
        c.train.log_every = 2
        c.train.checkpoint_every = 2
        c.gan.hidden_dim = 16
        c.sampler.num_samples = 8
    return c
