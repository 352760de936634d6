"""Score SDE, variance exploding (Song et al. 2021, Eq. 9; NCSN): sigma(t) = 0.01 (50 /
0.01)^t, training times t ~ U[0, 1], eps prediction with uniform weight (that is the
score-matching loss with lambda = sigma^2: eps = -sigma * score), and the
predictor-corrector sampler (Algorithms 2-3: reverse-SDE Euler-Maruyama predictor,
one Langevin corrector step at snr 0.16) over 1000 levels. UNet and data as
configs/ddpm_mnist.py.

Launch:
  python -m jaxgen.main --config=configs/sde_ve_mnist.py --workdir=runs/sde_ve_mnist \
      --config.data.data_dir=../shared/tfds
  # score prediction instead of eps:
  ... --config.diffusion.prediction=score --config.diffusion.weighting=snr
"""

from configs import ddpm_mnist


def get_config(arg: str | None = None):
    c = ddpm_mnist.get_config(arg)
    c.diffusion.process = "ve"
    c.diffusion.sigma_min = 0.01
    c.diffusion.sigma_max = 50.0       # about the largest distance between two MNIST images
    c.diffusion.prediction = "eps"
    c.sampler.method = "pc"
    c.sampler.num_steps = 1000
    c.sampler.snr = 0.16
    c.sampler.corrector_steps = 1
    c.sampler.clip_x0 = 0.0
    if arg == "smoke":
        c.sampler.num_steps = 3
    return c
