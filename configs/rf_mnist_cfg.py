"""Class-conditional rectified flow on MNIST with classifier-free guidance (Ho & Salimans
2022): labels are replaced by the null label with probability 0.15 in training, and
sampling uses (1 + w) v(x, t, y) - w v(x, t, null) with w = 2. The 10x10 sample grid
holds one class per column (0..9). Otherwise as configs/rf_mnist.py.

Launch:
  python -m jaxgen.main --config=configs/rf_mnist_cfg.py --workdir=runs/rf_mnist_cfg \
      --config.data.data_dir=../shared/tfds
"""

from configs import rf_mnist


def get_config(arg: str | None = None):
    c = rf_mnist.get_config(arg)
    c.model.num_classes = 10
    c.diffusion.label_dropout = 0.15
    c.sampler.guidance_weight = 2.0
    if arg == "smoke":
        c.sampler.num_samples = 10
    return c
