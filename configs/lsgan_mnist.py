"""LSGAN (Mao et al. 2017, eq. 2 with a=0, b=1, c=1) on MNIST with the DCGAN players and
optimizer of dcgan_mnist.

Launch:
  python -m jaxgen.main --config=configs/lsgan_mnist.py --workdir=runs/lsgan_mnist \
      --config.data.data_dir=../shared/tfds
"""

from configs import dcgan_mnist


def get_config(arg: str | None = None):
    c = dcgan_mnist.get_config(arg)
    c.gan.loss = "lsgan"
    return c
