"""A class-conditional DCGAN on MNIST: the generator's batch norms are conditional
(class-specific gamma^y, beta^y; de Vries et al. 2017, the lectures' conditional batch
normalization) and the discriminator is a projection discriminator (Miyato & Koyama
2018); non-saturating loss and optimizer of dcgan_mnist. samples.png is 10 columns wide,
one class per column.

Launch:
  python -m jaxgen.main --config=configs/cgan_mnist.py --workdir=runs/cgan_mnist \
      --config.data.data_dir=../shared/tfds
"""

from configs import dcgan_mnist


def get_config(arg: str | None = None):
    c = dcgan_mnist.get_config(arg)
    c.model.num_classes = 10
    c.sampler.num_samples = 100 if arg != "smoke" else 10
    return c
