"""Rectified flow (Liu et al. 2023) on MNIST: x_t = (1 - t) x + t z, velocity target
z - x, training times t = sigmoid(n), n ~ N(0, 1) (logit-normal, Esser et al. 2024),
Euler on the ODE with 50 uniform steps; UNet and data as configs/ddpm_mnist.py.

Launch:
  python -m jaxgen.main --config=configs/rf_mnist.py --workdir=runs/rf_mnist \
      --config.data.data_dir=../shared/tfds
"""

from configs import ddpm_mnist


def get_config(arg: str | None = None):
    c = ddpm_mnist.get_config(arg)
    c.diffusion.process = "rectified_flow"
    c.diffusion.prediction = "velocity"
    c.diffusion.time_sampler = "logit_normal"
    c.diffusion.time_mean = 0.0
    c.diffusion.time_std = 1.0
    c.sampler.method = "euler"
    c.sampler.num_steps = 50
    c.sampler.clip_x0 = 0.0            # integrate the learned ODE as it is
    if arg == "smoke":
        c.sampler.num_steps = 3
    return c
