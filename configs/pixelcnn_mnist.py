"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural
Networks") on dynamically binarized MNIST: a 7x7 mask-A convolution, residual blocks of
3x3 mask-B convolutions, 1x1 layers to one Bernoulli logit per pixel; the exact NLL is
the loss, and ``--mode=eval`` reports it on the held-out images (nats per image and
bits/dim). Each step binarizes its batch afresh, x ~ Bernoulli((x + 1) / 2); evaluation
uses one fixed binarization.

MNIST here is the real test split in TFDS format (train on 90%, evaluate on 10%);
``data.data_dir`` is the folder that holds ``mnist/`` (from the repository root of this
checkout: ../shared/tfds). The paper's 81.30 nats (Table 4) is on the 50k-image binarized
MNIST of Salakhutdinov & Murray (2008); see experiments/pixelcnn_nll.py.

Arguments: '' (binarized), '256' (8-bit pixels, a 256-way softmax per pixel, Sec. 5.3 of
the paper), 'smoke' (seconds), 'smoke256'.

Launch:
  python -m jaxgen.main --config=configs/pixelcnn_mnist.py --workdir=runs/pixelcnn_mnist \
      --config.data.data_dir=../shared/tfds
  python -m jaxgen.main --config=configs/pixelcnn_mnist.py --workdir=runs/pixelcnn_mnist \
      --config.data.data_dir=../shared/tfds --mode=eval
  python -m jaxgen.main --config=configs/pixelcnn_mnist.py:smoke --workdir=/tmp/smoke \
      --config.data.data_dir=../shared/tfds
"""

from configs import base

ARGS = (None, "", "256", "smoke", "smoke256")


def get_config(arg: str | None = None):
    if arg not in ARGS:
        raise ValueError(f"unknown config argument {arg!r}; allowed: '256', 'smoke', "
                         "'smoke256' or nothing")
    c = base.get_config()
    c.family = "autoregressive"
    c.data.name = "mnist"
    c.data.split = "test[:90%]"
    c.data.eval_split = "test[90%:]"
    c.model.name = "pixelcnn"
    c.ar.num_levels = 256 if arg in ("256", "smoke256") else 2
    c.ar.channels = 64
    c.ar.num_layers = 6
    c.ar.kernel_size = 3
    c.ar.first_kernel_size = 7
    c.ar.head_channels = 128
    c.train.batch_size = 64
    c.train.num_steps = 5000
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.train.eval_batches = 15            # 960 of the 1,000 held-out images (batch 64)
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 100
    c.optim.final_lr_fraction = 0.05
    c.optim.grad_clip = 1.0              # the loss is in nats per dimension
    c.optim.ema_decay = 0.999
    c.sampler.num_samples = 16           # 784 network passes each: slow on a CPU
    c.sampler.temperature = 1.0
    c.sampler.top_k = 0
    c.eval.num_samples = 0               # no feature net for sample quality by default
    if arg in ("smoke", "smoke256"):
        c.train.num_steps = 3
        c.train.batch_size = 4
        c.train.log_every = 1
        c.train.checkpoint_every = 3
        c.train.eval_batches = 1
        c.ar.channels = 4
        c.ar.num_layers = 1
        c.ar.first_kernel_size = 3
        c.ar.head_channels = 8
        c.sampler.num_samples = 2
    return c
