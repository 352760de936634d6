"""DCGAN on Stacked MNIST: three MNIST digits as the R, G and B channels of one 28x28
image, 1,000 modes (Metz et al. 2017; the mode-collapse benchmark of Srivastava et al.
2017, Table 2). Players, loss and optimizers of dcgan_mnist, with 3 output channels.
``experiments/stacked_mnist.py`` counts the modes of 26,000 samples with the MNIST
classifier.

The stacked set is built from ``data.split`` of MNIST (``jaxgen.data.stacked_source``):
as many stacked images as base images, channel 0 the base image itself, channels 1 and 2
drawn by two fixed permutations.

Launch:
  python -m jaxgen.main --config=configs/dcgan_stacked_mnist.py --workdir=runs/stacked \
      --config.data.data_dir=../shared/tfds
"""

from configs import dcgan_mnist


def get_config(arg: str | None = None):
    c = dcgan_mnist.get_config(arg)
    c.data.name = "stacked:mnist"
    return c
