"""The KL autoencoder of latent diffusion (Rombach et al. 2022) on MNIST: f = 4, so a
28 x 28 x 1 digit becomes a 7 x 7 x 4 latent; L1 reconstruction summed per image plus
1e-6 KL (Rombach et al.'s weight). ``--config.autoencoder.disc_weight=0.5`` adds the
patch discriminator (hinge, adaptive weight) after ``autoencoder.disc_warmup`` steps.
``samples.png`` shows reconstructions of the first eval-split digits; ``--mode=eval``
reports MSE / PSNR / KL on ``test[90%:]`` and the latent scale factor.

Launch:
  python -m jaxgen.main --config=configs/autoencoder_mnist.py \
      --workdir=runs/autoencoder_mnist --config.data.data_dir=../shared/tfds
  python -m jaxgen.main --config=configs/autoencoder_mnist.py \
      --workdir=runs/autoencoder_mnist --config.data.data_dir=../shared/tfds --mode=eval
  python -m jaxgen.main --config=configs/autoencoder_mnist.py:smoke --workdir=/tmp/smoke \
      --config.data.data_dir=../shared/tfds
"""

from configs import base


def get_config(arg: str | None = None):
    if arg not in (None, "", "smoke"):
        raise ValueError(f"unknown config argument {arg!r}; allowed: 'smoke' or nothing")
    c = base.get_config()
    c.family = "autoencoder"
    c.data.name = "mnist"
    c.data.split = "test[:90%]"
    c.data.eval_split = "test[90%:]"
    # Small enough for a CPU: a 2000-step run at batch 32 takes minutes on 2 cores.
    c.autoencoder.channels = (16, 32, 32)
    c.autoencoder.downsample_factor = 4
    c.autoencoder.latent_channels = 4
    c.train.num_steps = 2000
    c.train.batch_size = 32
    c.train.checkpoint_every = 500
    c.train.eval_batches = 32          # 32 x 32 = 1024 >= the 1000 eval-split images
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 100
    c.optim.final_lr_fraction = 0.05
    c.optim.ema_decay = 0.99
    c.sampler.num_samples = 64
    c.eval.num_samples = 0             # reconstructions are not samples: no FD/KID
    if arg == "smoke":
        c.train.num_steps = 4
        c.train.batch_size = 8
        c.train.log_every = 2
        c.train.checkpoint_every = 2
        c.train.eval_batches = 1
        c.autoencoder.channels = (8, 16)
        c.autoencoder.downsample_factor = 2
        c.autoencoder.disc_weight = 0.5
        c.autoencoder.disc_warmup = 2
        c.autoencoder.disc_channels = (8,)
        c.sampler.num_samples = 4
    return c
