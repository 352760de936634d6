"""WGAN with weight clipping (Arjovsky et al. 2017, Algorithm 1) on MNIST with the DCGAN
players of dcgan_mnist: the Wasserstein critic loss, every critic weight clipped to
[-0.01, 0.01] after each update, n_critic = 5, RMSProp at 5e-5 for both players (the
paper's choice: momentum hurt its critic; the squared-gradient average decays with 0.9,
optax's default, for both). The critic keeps batch norm, as the paper's DCGAN critic did.

Launch:
  python -m jaxgen.main --config=configs/wgan_mnist.py --workdir=runs/wgan_mnist \
      --config.data.data_dir=../shared/tfds
"""

from configs import dcgan_mnist


def get_config(arg: str | None = None):
    c = dcgan_mnist.get_config(arg)
    c.gan.loss = "wgan"
    c.gan.clip_value = 0.01
    c.gan.n_critic = 5
    c.gan.d_optimizer = "rmsprop"
    c.gan.d_learning_rate = 5e-5
    c.optim.name = "rmsprop"
    c.optim.learning_rate = 5e-5
    c.optim.b2 = 0.9                   # RMSProp's decay
    return c
