"""Score SDE, variance preserving (Song et al. 2021, Eq. 11; the continuous DDPM):
beta(t) = 0.1 + 19.9 t, training times t ~ U[1e-5, 1], eps prediction, and
Euler-Maruyama on the reverse-time SDE (Eq. 6) over 1000 levels. UNet and data as
configs/ddpm_mnist.py.

Launch:
  python -m jaxgen.main --config=configs/sde_vp_mnist.py --workdir=runs/sde_vp_mnist \
      --config.data.data_dir=../shared/tfds
"""

from configs import ddpm_mnist


def get_config(arg: str | None = None):
    c = ddpm_mnist.get_config(arg)
    c.diffusion.process = "vp"
    c.diffusion.beta_min = 0.1
    c.diffusion.beta_max = 20.0
    c.diffusion.prediction = "eps"
    c.sampler.method = "euler_maruyama"
    c.sampler.num_steps = 1000
    c.sampler.clip_x0 = 0.0
    if arg == "smoke":
        c.sampler.num_steps = 3
    return c
