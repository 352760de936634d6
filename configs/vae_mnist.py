"""VAE (Kingma & Welling 2014) on dynamically binarized MNIST: the lectures' MLP
784-400-20 (ReLU; Linear(400 -> 20) heads for mu and log sigma^2), Bernoulli decoder, the
ELBO with one sample. Each step binarizes its batch afresh, x ~ Bernoulli((x + 1) / 2);
evaluation uses one fixed binarization. The other VAE MNIST configs derive from this one.

MNIST here is the real test split in TFDS format (train on 90%, evaluate on 10%);
``data.data_dir`` is the folder that holds ``mnist/`` (from the repository root of this
checkout: ../shared/tfds).

Arguments: '' (this setting), 'smoke' (seconds), 'paper': Burda et al. (2016)'s setting
on the full MNIST (split 'train', evaluation on 'test'; needs the full dataset):
784-200-200-50 tanh, batch 20, Adam(eps 1e-4), 3,280 passes (9.84M steps), IWAE k=5000
evaluation. Their learning rate 1e-3 * 10^(-i/7) for 3^i passes, i = 0..7, is
approximated by a cosine decay from 1e-3 to 1e-4.

Launch:
  python -m jaxgen.main --config=configs/vae_mnist.py --workdir=runs/vae_mnist \
      --config.data.data_dir=../shared/tfds
  python -m jaxgen.main --config=configs/vae_mnist.py:smoke --workdir=/tmp/smoke \
      --config.data.data_dir=../shared/tfds
  python -m jaxgen.main --config=configs/vae_mnist.py:paper --workdir=runs/vae_mnist_paper
  # the test NLL estimate (IWAE, k = 5000) of a trained run: experiments/vae_nll.py
"""

from configs import base

ARGS = (None, "", "smoke", "paper")
MNIST_TRAIN_IMAGES = 60_000


def get_config(arg: str | None = None):
    if arg not in ARGS:
        raise ValueError(f"unknown config argument {arg!r}; allowed: 'smoke', 'paper' or nothing")
    c = base.get_config()
    c.family = "vae"
    c.data.name = "mnist"
    c.data.split = "test[:90%]"
    c.data.eval_split = "test[90%:]"
    c.model.name = "vae_mlp"
    c.vae.likelihood = "bernoulli"
    c.vae.hidden_dims = (400,)
    c.vae.latent_dim = 20
    c.vae.activation = "relu"
    c.train.batch_size = 100
    c.train.num_steps = 30_000           # 333 passes over the 9,000 training images
    c.train.log_every = 100
    c.train.checkpoint_every = 5000
    c.train.eval_batches = 10            # the 1,000 held-out images
    c.vae.eval_num_samples = 1000        # --mode=eval: IWAE estimate of -log p(x), k = 1000
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 100
    c.optim.final_lr_fraction = 0.1
    c.optim.eps = 1e-4                   # Burda et al.
    c.optim.grad_clip = 0.0              # the loss is in nats per image (~100): no clipping
    c.optim.ema_decay = 0.999
    c.sampler.num_samples = 100          # a 10x10 grid
    c.eval.num_samples = 0               # no feature net for sample quality by default
    if arg == "paper":
        c.data.split, c.data.eval_split = "train", "test"
        c.vae.hidden_dims = (200, 200)
        c.vae.latent_dim = 50
        c.vae.activation = "tanh"
        c.vae.top_hidden_dims = (100, 100)
        c.train.batch_size = 20
        c.train.num_steps = 3280 * MNIST_TRAIN_IMAGES // 20
        c.train.checkpoint_every = 100_000
        c.train.log_every = 1000
        c.train.eval_batches = 500       # the 10,000 test images
        c.vae.eval_num_samples = 5000
        c.optim.warmup_steps = 0
        c.optim.ema_decay = 0.0          # the paper evaluates the trained weights
    if arg == "smoke":
        c.train.num_steps = 4
        c.train.batch_size = 8
        c.train.log_every = 2
        c.train.checkpoint_every = 2
        c.train.eval_batches = 1
        c.vae.hidden_dims = (16,)
        c.vae.latent_dim = 2
        c.vae.conv_channels = (4, 8)
        c.vae.top_hidden_dims = (8,)
        c.vae.top_latent_dim = 2
        c.vae.eval_num_samples = 4
        c.vae.eval_chunk_size = 3
        c.sampler.num_samples = 4
    return c
