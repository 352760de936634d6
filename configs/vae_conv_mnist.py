"""Convolutional VAE on dynamically binarized MNIST: stride-2 3x3 convolutions 28 -> 14 ->
7 (32, 64 channels), a 20-d Gaussian latent from Linear heads, nearest-neighbour
upsampling and 3x3 convolutions back to 28x28 Bernoulli logits; otherwise as
configs/vae_mnist.py.

Launch:
  python -m jaxgen.main --config=configs/vae_conv_mnist.py --workdir=runs/vae_conv_mnist \
      --config.data.data_dir=../shared/tfds
"""

from configs import vae_mnist


def get_config(arg: str | None = None):
    c = vae_mnist.get_config(arg)
    c.model.name = "vae_conv"
    if arg != "smoke":
        c.vae.conv_channels = (32, 64)
        c.train.num_steps = 10_000
    return c
