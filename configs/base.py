"""Defaults shared by every experiment; experiments derive from ``get_config()``.

Fields every config has (scripts may rely on them): seed, data.name, data.split,
data.data_dir, model.name, train.num_steps, train.batch_size, train.log_every,
train.checkpoint_every, train.sample_every.
"""

from ml_collections import config_dict


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
    c = config_dict.ConfigDict()
    c.seed = 0
    c.family = "diffusion"

    c.data = config_dict.ConfigDict()
    c.data.name = "digits"             # 'digits' (bundled 8x8) or any TFDS image dataset
    c.data.split = "train"
    c.data.eval_split = "test"
    c.data.data_dir = config_dict.placeholder(str)  # TFDS data_dir; None = TFDS default
    c.data.random_flip = False

    c.model = config_dict.ConfigDict()
    c.model.name = "unet"
    c.model.block_channels = (32, 64)
    c.model.attention = (False, True)
    c.model.layers_per_block = 2
    c.model.mid_attention = True
    c.model.num_groups = 8
    c.model.head_dim = 8
    c.model.time_conditioning = "adagn"
    c.model.dropout = 0.0

    c.diffusion = config_dict.ConfigDict()
    c.diffusion.process = "ddpm"
    c.diffusion.schedule = "linear"
    c.diffusion.num_timesteps = 1000
    c.diffusion.beta_start = 1e-4
    c.diffusion.beta_end = 0.02
    c.diffusion.prediction = "eps"

    c.sampler = config_dict.ConfigDict()
    c.sampler.method = "ddpm"
    c.sampler.variance = "beta"
    c.sampler.clip_x0 = 1.0            # <= 0 disables clipping of the x_0 estimate
    c.sampler.num_samples = 64

    c.optim = config_dict.ConfigDict()
    c.optim.name = "adam"
    c.optim.learning_rate = 2e-4
    c.optim.schedule = "constant"      # 'constant' or 'cosine' (after warm-up)
    c.optim.warmup_steps = 100
    c.optim.final_lr_fraction = 0.0
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.weight_decay = 0.0
    c.optim.grad_clip = 1.0            # global-norm clipping; <= 0 disables
    c.optim.ema_decay = 0.999

    c.train = config_dict.ConfigDict()
    c.train.num_steps = 10_000
    c.train.batch_size = 64
    c.train.log_every = 50
    c.train.checkpoint_every = 1000
    c.train.sample_every = 0           # 0: only the final samples.png
    c.train.keep_checkpoints = 3
    c.train.eval_batches = 4
    return c
