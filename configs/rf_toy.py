"""Rectified flow (Liu et al. 2023; the lectures' 2-D example) on a toy distribution
(8 Gaussians on a circle) with the time-conditioned MLP: x_t = (1 - t) x + t z,
velocity target z - x, t ~ U[0, 1], Euler with 100 steps. Optimisation and data as
configs/ddpm_toy.py.

Launch:
  python -m jaxgen.main --config=configs/rf_toy.py --workdir=runs/rf_toy
  python -m jaxgen.main --config=configs/rf_toy.py --workdir=runs/rf_checkerboard \
      --config.data.name=toy:checkerboard
"""

from configs import ddpm_toy


def get_config(arg: str | None = None):
    c = ddpm_toy.get_config(arg)
    c.diffusion.process = "rectified_flow"
    c.diffusion.prediction = "velocity"
    c.sampler.method = "euler"
    c.sampler.num_steps = 100
    if arg == "smoke":
        c.sampler.num_steps = 3
    return c
