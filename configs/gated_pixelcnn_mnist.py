"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders") on dynamically binarized MNIST: vertical and horizontal stacks (no blind spot),
gated tanh * sigmoid units, residual horizontal stack; otherwise as
configs/pixelcnn_mnist.py (same arguments: '', '256', 'smoke', 'smoke256').

Launch:
  python -m jaxgen.main --config=configs/gated_pixelcnn_mnist.py \
      --workdir=runs/gated_pixelcnn_mnist --config.data.data_dir=../shared/tfds
"""

from configs import pixelcnn_mnist


def get_config(arg: str | None = None):
    c = pixelcnn_mnist.get_config(arg)
    c.model.name = "gated_pixelcnn"
    return c
