"""A VAE with two stochastic layers on dynamically binarized MNIST (Burda et al. 2016's
two-layer architecture): q(z_1|x) q(z_2|z_1) and p(z_2) p(z_1|z_2) p(x|z_1), with
784-100-100-[z_1: 100]-50-50-[z_2: 50] tanh MLPs, the Markovian hierarchical VAE of the
lectures. Trained on the ELBO (``--config.vae.num_samples=k`` for the IWAE bound);
otherwise as configs/vae_mnist.py.

Launch:
  python -m jaxgen.main --config=configs/vae_hierarchical_mnist.py \
      --workdir=runs/vae_hierarchical_mnist --config.data.data_dir=../shared/tfds
"""

from configs import vae_mnist


def get_config(arg: str | None = None):
    c = vae_mnist.get_config(arg)
    c.model.name = "vae_hierarchical"
    if arg != "smoke":
        c.vae.hidden_dims = (100, 100)
        c.vae.latent_dim = 100
        c.vae.top_hidden_dims = (50, 50)
        c.vae.top_latent_dim = 50
        c.vae.activation = "tanh"
    return c
