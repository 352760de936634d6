"""A small class-conditional Diffusion Transformer (DiT, Peebles & Xie 2023) on MNIST under
rectified flow with classifier-free guidance.

28x28 digits cut into 4x4 patches (49 tokens), 6 adaLN-Zero blocks of width 128 with 4
heads; velocity target, logit-normal training times, labels dropped with probability
0.15 and guided Euler sampling (w = 2, 50 steps) as configs/rf_mnist_cfg.py. The 10x10
sample grid holds one class per column (0..9).

Launch:
  python -m jaxgen.main --config=configs/dit_mnist.py --workdir=runs/dit_mnist \
      --config.data.data_dir=../shared/tfds
  python -m jaxgen.main --config=configs/dit_mnist.py:smoke --workdir=/tmp/smoke \
      --config.data.data_dir=../shared/tfds
"""

from configs import rf_mnist_cfg


def get_config(arg: str | None = None):
    c = rf_mnist_cfg.get_config(arg)
    c.model.name = "dit"
    c.model.patch_size = 4
    c.model.hidden_size = 128
    c.model.depth = 6
    c.model.num_heads = 4
    c.model.mlp_ratio = 4.0
    c.optim.learning_rate = 5e-4
    c.optim.warmup_steps = 200
    if arg == "smoke":
        c.model.hidden_size = 32
        c.model.depth = 2
        c.model.num_heads = 2
    return c
