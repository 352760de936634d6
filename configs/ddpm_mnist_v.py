"""DDPM on MNIST with v-prediction (Salimans & Ho 2022, v = alpha eps - sigma x_0) and
Min-SNR-5 weighting (Hang et al. 2023: min(SNR, 5) on the x_0 error, i.e.
min(SNR, 5) / (SNR + 1) on the v error); otherwise as configs/ddpm_mnist.py.

Launch:
  python -m jaxgen.main --config=configs/ddpm_mnist_v.py --workdir=runs/ddpm_mnist_v \
      --config.data.data_dir=../shared/tfds
"""

from configs import ddpm_mnist


def get_config(arg: str | None = None):
    c = ddpm_mnist.get_config(arg)
    c.diffusion.prediction = "v"
    c.diffusion.weighting = "min_snr"
    c.diffusion.min_snr_gamma = 5.0
    return c
