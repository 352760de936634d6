"""IWAE (Burda et al. 2016, "Importance Weighted Autoencoders") on dynamically binarized
MNIST: trained on the k-sample bound L_k, k = 50 by default (Eq. 8); otherwise as
configs/vae_mnist.py (the lectures' 784-400-20 MLP, Bernoulli decoder; 'paper' gives
Burda et al.'s one-stochastic-layer setting on the full MNIST). Each step costs about k
decoder passes per image.

Launch:
  python -m jaxgen.main --config=configs/iwae_mnist.py --workdir=runs/iwae50_mnist \
      --config.data.data_dir=../shared/tfds
  python -m jaxgen.main --config=configs/iwae_mnist.py --workdir=runs/iwae5_mnist \
      --config.data.data_dir=../shared/tfds --config.vae.num_samples=5
"""

from configs import vae_mnist


def get_config(arg: str | None = None):
    c = vae_mnist.get_config(arg)
    c.vae.num_samples = 2 if arg == "smoke" else 50
    return c
