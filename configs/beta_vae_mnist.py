"""beta-VAE (Higgins et al. 2017) on dynamically binarized MNIST: the objective
E_q[log p(x|z)] - beta KL(q(z|x) || p(z)) with beta = 4 and a 10-d latent, which trades
reconstruction for a latent closer to the prior; otherwise as configs/vae_mnist.py.
The logged ``elbo`` is the true bound (beta = 1), ``loss`` the weighted objective.

Launch:
  python -m jaxgen.main --config=configs/beta_vae_mnist.py --workdir=runs/beta_vae_mnist \
      --config.data.data_dir=../shared/tfds
"""

from configs import vae_mnist


def get_config(arg: str | None = None):
    c = vae_mnist.get_config(arg)
    c.vae.beta = 4.0
    if arg != "smoke":
        c.vae.latent_dim = 10
    return c
