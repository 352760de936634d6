"""The hinge loss (Lim & Ye 2017; Miyato et al. 2018) on MNIST with the DCGAN players of
dcgan_mnist and the two time-scale update rule (Heusel et al. 2017) as in SAGAN (Zhang et
al. 2019): Adam (beta1 0, beta2 0.9), discriminator learning rate 4e-4, generator 1e-4.

Launch:
  python -m jaxgen.main --config=configs/hinge_mnist.py --workdir=runs/hinge_mnist \
      --config.data.data_dir=../shared/tfds
"""

from configs import dcgan_mnist


def get_config(arg: str | None = None):
    c = dcgan_mnist.get_config(arg)
    c.gan.loss = "hinge"
    c.gan.d_learning_rate = 4e-4
    c.gan.d_b1, c.gan.d_b2 = 0.0, 0.9
    c.optim.learning_rate = 1e-4
    c.optim.b1, c.optim.b2 = 0.0, 0.9
    return c
