"""The KL-regularised autoencoder of latent diffusion (Rombach et al. 2022, Sec. 3 and
App. G: a VAE objective with the KL weighted by ~1e-6) on MNIST: convolutional, a
Gaussian decoder with fixed std 0.1 on the grey levels in [-1, 1], beta = 1e-6, so the
latent stays near the prior's scale while reconstructions are nearly exact. (Rombach et
al. add perceptual and adversarial losses, not reproduced here.)

This is a flat-vector VAE; the spatial KL autoencoder that latent diffusion runs on (a
7 x 7 x C latent, optional patch discriminator) is ``configs/autoencoder_mnist.py``.

Launch:
  python -m jaxgen.main --config=configs/beta_vae_ldm_mnist.py \
      --workdir=runs/beta_vae_ldm_mnist --config.data.data_dir=../shared/tfds
"""

from configs import vae_mnist


def get_config(arg: str | None = None):
    c = vae_mnist.get_config(arg)
    c.model.name = "vae_conv"
    c.vae.likelihood = "gaussian"
    c.vae.decoder_std = 0.1
    c.vae.beta = 1e-6
    if arg != "smoke":
        c.vae.latent_dim = 32
        c.train.num_steps = 10_000
    return c
