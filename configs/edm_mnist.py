"""EDM (Karras et al. 2022) on MNIST: sigma(t) = t in [0.002, 80], the preconditioned
denoiser D = c_skip x + c_out F(c_in x, c_noise) (Eq. 7, Table 1; sigma_data = 0.5),
the EDM loss weight (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (Eq. 8), training
noise levels log sigma ~ N(-1.2, 1.2^2), and Heun's 2nd-order sampler (Algorithm 1) on
18 Karras levels (rho = 7; 35 evaluations). UNet and data as configs/ddpm_mnist.py.

Launch:
  python -m jaxgen.main --config=configs/edm_mnist.py --workdir=runs/edm_mnist \
      --config.data.data_dir=../shared/tfds
"""

from configs import ddpm_mnist


def get_config(arg: str | None = None):
    c = ddpm_mnist.get_config(arg)
    c.diffusion.process = "edm"
    c.diffusion.sigma_min = 0.002
    c.diffusion.sigma_max = 80.0
    c.diffusion.sigma_data = 0.5
    c.diffusion.precondition = "edm"
    c.diffusion.prediction = "x0"
    c.diffusion.weighting = "edm"
    c.diffusion.time_sampler = "log_normal"
    c.diffusion.time_mean = -1.2
    c.diffusion.time_std = 1.2
    c.sampler.method = "heun"
    c.sampler.num_steps = 18
    c.sampler.spacing = "karras"
    c.sampler.clip_x0 = 0.0
    if arg == "smoke":
        c.sampler.num_steps = 3
    return c
