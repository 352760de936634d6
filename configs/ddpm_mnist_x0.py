"""DDPM on MNIST predicting x_0 instead of eps, with Min-SNR-5 loss weighting (Hang et
al. 2023, Eq. 8: lambda = min(SNR, 5) on the x_0 error), so the x_0-MSE does not
overweight the nearly clean steps; otherwise as configs/ddpm_mnist.py.

Launch:
  python -m jaxgen.main --config=configs/ddpm_mnist_x0.py --workdir=runs/ddpm_mnist_x0 \
      --config.data.data_dir=../shared/tfds
"""

from configs import ddpm_mnist


def get_config(arg: str | None = None):
    c = ddpm_mnist.get_config(arg)
    c.diffusion.prediction = "x0"
    c.diffusion.weighting = "min_snr"
    c.diffusion.min_snr_gamma = 5.0
    return c
