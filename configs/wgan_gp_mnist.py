"""WGAN-GP (Gulrajani et al. 2017) on MNIST with the DCGAN players of dcgan_mnist: the
Wasserstein critic loss plus 10 (||grad D(x_hat)|| - 1)^2 on interpolates, n_critic = 5,
Adam (1e-4, betas 0, 0.9) as in the paper's Algorithm 1, and layer norm instead of batch
norm in the critic (sec. 4: the penalty is per example).

Launch:
  python -m jaxgen.main --config=configs/wgan_gp_mnist.py --workdir=runs/wgan_gp_mnist \
      --config.data.data_dir=../shared/tfds
"""

from configs import dcgan_mnist


def get_config(arg: str | None = None):
    c = dcgan_mnist.get_config(arg)
    c.gan.loss = "wgan_gp"
    c.gan.d_norm = "layer"
    c.gan.n_critic = 5
    c.gan.gp_weight = 10.0
    c.gan.d_learning_rate = 1e-4
    c.gan.d_b1, c.gan.d_b2 = 0.0, 0.9
    c.optim.learning_rate = 1e-4
    c.optim.b1, c.optim.b2 = 0.0, 0.9
    return c
