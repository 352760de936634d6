"""Super-resolution diffusion (Saharia et al. 2021, SR3) on MNIST, 14 x 14 -> 28 x 28: DDPM
(eps, linear betas, T = 1000) whose (16, 32) UNet sees x_t concatenated with the bicubic
upsampling of the area-downsampled digit; DDIM with 50 steps. ``samples.png`` holds the
super-resolved first eval-split digits; ``--mode=eval`` reports the PSNR of the
super-resolution and of nearest / bicubic upsampling on ``test[90%:]``.

Launch:
  python -m jaxgen.main --config=configs/sr_mnist.py --workdir=runs/sr_mnist \
      --config.data.data_dir=../shared/tfds
  python -m jaxgen.main --config=configs/sr_mnist.py:smoke --workdir=/tmp/smoke \
      --config.data.data_dir=../shared/tfds
"""

from configs import ddpm_mnist


def get_config(arg: str | None = None):
    c = ddpm_mnist.get_config(arg)
    c.diffusion.condition = "low_res"
    c.diffusion.low_res_size = 14
    c.sampler.method = "ddim"
    c.sampler.num_steps = 50
    c.train.eval_batches = 4
    if arg != "smoke":
        # Small for a CPU (the conditioning carries most of the image): ~0.5 s per step
        # on 2 cores.
        c.model.block_channels = (16, 32)
        c.model.attention = (False, True)
        c.train.num_steps = 2000
        c.train.batch_size = 32
        c.train.checkpoint_every = 500
        c.train.sample_every = 0
        c.optim.warmup_steps = 200
        c.optim.learning_rate = 1e-3
        c.optim.ema_decay = 0.995
    else:
        c.sampler.num_steps = 4
        c.train.eval_batches = 1
    return c
