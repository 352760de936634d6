"""Every config field and its default; experiment configs (``configs/*.py``) derive from
``get_config()``, through ``configs/base.py``.

The defaults live in the package so that a run saved before a field existed loads with
the value that keeps its behaviour wherever jaxgen is installed (``checkpoint.load_config``
fills missing fields from here).

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
    c.data.name = "digits"             # 'digits' (bundled 8x8), 'toy:NAME' or a TFDS dataset
    c.data.split = "train"
    c.data.eval_split = "test"
    c.data.data_dir = config_dict.placeholder(str)  # TFDS data_dir; None = TFDS default
    c.data.random_flip = False

    c.model = config_dict.ConfigDict()
    c.model.name = "unet"              # 'unet' or 'dit' (images), 'mlp' (toy (N, D) data)
    c.model.block_channels = (32, 64)
    c.model.attention = (False, True)
    c.model.layers_per_block = 2
    c.model.mid_attention = True
    c.model.num_groups = 8
    c.model.head_dim = 8
    c.model.time_conditioning = "adagn"
    c.model.dropout = 0.0
    c.model.num_classes = 0            # > 0: conditioned on batch['label'] (+1 'no class' row)
    c.model.hidden_dim = 256           # 'mlp' only: width of the hidden layers
    c.model.num_layers = 3             # 'mlp' only: residual blocks
    c.model.dit_size = ""              # 'dit': 'S', 'B', 'L' or 'XL' (Peebles & Xie 2023,
                                       # Table 1) sets depth/hidden_size/num_heads; '': below
    c.model.patch_size = 2             # 'dit': p x p patches (image sides divisible by p)
    c.model.hidden_size = 384          # 'dit': token width (divisible by 4 and num_heads)
    c.model.depth = 12                 # 'dit': transformer blocks
    c.model.num_heads = 6              # 'dit': attention heads
    c.model.mlp_ratio = 4.0            # 'dit': MLP hidden width / hidden_size
    c.model.remat = False              # 'unet'/'dit': recompute each block's activations in
                                       # the backward pass (less memory, ~1 more forward)

    c.diffusion = config_dict.ConfigDict()
    c.diffusion.process = "ddpm"       # 'ddpm', 'vp', 've', 'rectified_flow' or 'edm'
    # 'ddpm' (discrete, integer t in 0..T-1):
    c.diffusion.schedule = "linear"
    c.diffusion.num_timesteps = 1000
    c.diffusion.beta_start = 1e-4
    c.diffusion.beta_end = 0.02
    c.diffusion.beta_min = 0.1         # 'vp': beta(t) = beta_min + t (beta_max - beta_min)
    c.diffusion.beta_max = 20.0
    c.diffusion.sigma_min = config_dict.placeholder(float)  # 've'/'edm'; None: the process's
    c.diffusion.sigma_max = config_dict.placeholder(float)  # default (0.01/50, 0.002/80)
    c.diffusion.sigma_data = 0.5       # data std: EDM preconditioning and 'edm' weighting
    c.diffusion.prediction = "eps"     # 'eps', 'x0', 'v', 'velocity' or 'score'
    c.diffusion.weighting = "uniform"  # 'uniform', 'snr', 'min_snr' or 'edm'
    c.diffusion.min_snr_gamma = 5.0
    c.diffusion.time_sampler = "uniform"  # 'uniform', 'logit_normal' or 'log_normal'
    c.diffusion.time_mean = 0.0        # logit_normal / log_normal location
    c.diffusion.time_std = 1.0         # logit_normal / log_normal scale
    c.diffusion.time_shift = 1.0       # SD3 time shift (uniform / logit_normal); 1 = none
    c.diffusion.precondition = "none"  # 'none' or 'edm' (the network then predicts 'x0')
    c.diffusion.label_dropout = 0.0    # classifier-free guidance training; 0 disables
    c.diffusion.condition = "none"     # 'none' or 'low_res': super-resolution, the network
                                       # also sees the upsampled low-res image (Saharia et al.)
    c.diffusion.low_res_size = 14      # 'low_res': side of the area-downsampled input

    c.latent = config_dict.ConfigDict()  # latent diffusion (family 'diffusion')
    c.latent.autoencoder_workdir = ""  # a trained family-'autoencoder' run: diffuse in its
                                       # latent space; '' = pixel space
    c.latent.scale_factor = config_dict.placeholder(float)  # None: 1 / std of the latents,
                                       # estimated from the autoencoder's training images
    c.latent.scale_images = 1000       # images that estimate uses

    c.sampler = config_dict.ConfigDict()
    c.sampler.method = "ddpm"          # 'ddpm', 'ddim', 'euler', 'heun', 'euler_maruyama',
                                       # 'pc' or 'dpm_solver++'
    c.sampler.variance = "beta"
    c.sampler.clip_x0 = 1.0            # <= 0 disables clipping of the x_0 estimate
    c.sampler.num_samples = 64
    c.sampler.num_steps = 0            # 0: every step of a discrete process
    c.sampler.spacing = ""             # '': the process's default grid spacing
    c.sampler.eta = 0.0                # 'ddim': 0 deterministic, 1 = DDPM with beta-tilde
    c.sampler.guidance_weight = 0.0    # classifier-free guidance w (needs label_dropout > 0)
    c.sampler.snr = 0.16               # 'pc': Langevin corrector signal-to-noise ratio
    c.sampler.corrector_steps = 1      # 'pc': Langevin steps per level
    c.sampler.temperature = 1.0        # autoregressive families: softmax temperature of
                                       # each draw (0 = argmax)
    c.sampler.top_k = 0                # autoregressive: draw among the k most likely values
                                       # only; 0 = all

    c.optim = config_dict.ConfigDict()
    c.optim.name = "adam"              # 'adam', 'adamw' or 'rmsprop' (decay b2, no momentum)
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
    c.train.on_nonfinite = "stop"      # NaN/Inf loss or gradients: 'stop' the run, or 'skip'
                                       # the update (the step still advances)
    c.train.fsdp = 1                   # devices per FSDP group: params and optimizer state
                                       # split over them (1 = replicated, data parallel)
    c.train.compute_dtype = "float32"  # 'bfloat16': the network computes in bf16 (params,
                                       # optimizer state and loss stay float32)
    c.train.grad_accum_steps = 1       # micro-batches per step (same gradient, less memory)

    c.gan = config_dict.ConfigDict()  # family 'gan'; the generator's optimizer is optim.*
    c.gan.loss = "non_saturating"      # 'minimax' (saturating), 'non_saturating', 'wgan'
                                       # (weight clipping), 'wgan_gp', 'lsgan' or 'hinge'
    c.gan.arch = "dcgan"               # 'dcgan' (images) or 'mlp' (toy (N, D) data)
    c.gan.latent_dim = 64              # size of z ~ N(0, I)
    c.gan.g_channels = (64, 32)        # 'dcgan' generator: channels from the projection up;
                                       # each entry doubles the image side
    c.gan.d_channels = (32, 64)        # 'dcgan' discriminator: strided-conv channels
    c.gan.d_norm = "batch"             # 'dcgan' discriminator: 'batch', 'layer', 'spectral' or 'none'
    c.gan.hidden_dim = 128             # 'mlp': width of the hidden layers of both players
    c.gan.num_layers = 2               # 'mlp': hidden layers of both players
    c.gan.n_critic = 1                 # discriminator updates per generator update
    c.gan.critic_data = "reuse"        # each critic update sees the whole real batch
                                       # ('reuse') or its 1/n_critic slice ('split')
    c.gan.d_optimizer = "adam"         # 'adam' or 'rmsprop' (the WGAN paper's, for 'wgan')
    c.gan.d_learning_rate = 2e-4       # discriminator learning rate (TTUR: may differ)
    c.gan.d_b1 = 0.5                   # discriminator Adam betas
    c.gan.d_b2 = 0.999
    c.gan.gp_weight = 10.0             # 'wgan_gp': lambda of the gradient penalty
    c.gan.r1_weight = 0.0              # gamma of the R1 penalty gamma/2 ||grad D(x)||^2; 0: off
    c.gan.clip_value = 0.01            # 'wgan': critic weights are kept in [-c, c]

    c.vae = config_dict.ConfigDict()   # family 'vae' (model.name 'vae_mlp', 'vae_conv' or
                                       # 'vae_hierarchical'); see jaxgen/train/vae.py
    c.vae.likelihood = "bernoulli"     # 'bernoulli' (binarized data), 'gaussian' or
                                       # 'discretized_logistic' (8-bit images)
    c.vae.learn_variance = False       # 'gaussian': per-value variance from the decoder
    c.vae.decoder_std = 0.1            # 'gaussian' without learn_variance: fixed std
    c.vae.latent_dim = 20              # z (z_1 of the hierarchy)
    c.vae.hidden_dims = (400,)         # MLP layers between x and z (decoder mirrored)
    c.vae.conv_channels = (32, 64)     # 'vae_conv': one stride-2 level each
    c.vae.top_latent_dim = 50          # 'vae_hierarchical': z_2
    c.vae.top_hidden_dims = (100, 100)  # 'vae_hierarchical': layers between z_1 and z_2
    c.vae.activation = "relu"          # 'relu', 'tanh', 'silu' or 'softplus'
    c.vae.beta = 1.0                   # KL weight (beta-VAE; 1e-6: a KL-regularised AE)
    c.vae.num_samples = 1              # training: 1 = ELBO, k > 1 = IWAE bound L_k
    c.vae.eval_num_samples = 0         # evaluate: IWAE log p(x) estimate with k samples; 0 off
    c.vae.eval_chunk_size = 100        # samples per chunk of that estimate (memory)

    c.autoencoder = config_dict.ConfigDict()  # family 'autoencoder': the KL autoencoder of
                                       # latent diffusion; see jaxgen/train/autoencoder.py
    c.autoencoder.channels = (32, 64, 64)  # channels per level; one stride-2 step between
    c.autoencoder.downsample_factor = 4  # = 2^(levels - 1): H x W -> H/f x W/f
    c.autoencoder.latent_channels = 4  # C of the latent
    c.autoencoder.num_res_blocks = 1   # residual blocks per level (decoder: one more)
    c.autoencoder.num_groups = 8       # GroupNorm groups
    c.autoencoder.reconstruction = "l1"  # pixel loss summed per image: 'l1' or 'l2'
    c.autoencoder.kl_weight = 1e-6     # weight of KL(q(z|x) || N(0, I)) (Rombach et al.)
    c.autoencoder.disc_weight = 0.0    # patch discriminator (hinge) weight; 0 = none
    c.autoencoder.disc_warmup = 2000   # steps before the discriminator is switched on
    c.autoencoder.disc_channels = (32, 64)  # its stride-2 conv channels
    c.autoencoder.disc_learning_rate = 2e-4

    c.ar = config_dict.ConfigDict()    # family 'autoregressive' (model.name 'pixelcnn' or
                                       # 'gated_pixelcnn'); see jaxgen/train/autoregressive.py
    c.ar.num_levels = 2                # values per pixel: 2 = binarized (Bernoulli), 256 =
                                       # 8-bit (256-way softmax)
    c.ar.channels = 64                 # feature maps of the masked / gated layers
    c.ar.num_layers = 6                # layers after the first (mask-A) one
    c.ar.kernel_size = 3               # their kernel (odd)
    c.ar.first_kernel_size = 7         # the first layer's kernel (odd, >= 3)
    c.ar.head_channels = 128           # the 1x1 layer before the logits

    c.vq = config_dict.ConfigDict()    # family 'vqvae' (van den Oord et al. 2017); see
                                       # jaxgen/train/vqvae.py
    c.vq.num_codes = 64                # K, codebook size
    c.vq.code_dim = 16                 # D, width of each code
    c.vq.channels = (32, 64)           # encoder stride-2 levels (decoder mirrored)
    c.vq.num_res_blocks = 1            # residual blocks at the code resolution
    c.vq.commitment = 0.25             # beta of the commitment loss
    c.vq.codebook_update = "ema"       # 'ema' (moving averages, App. A.1) or 'loss'
                                       # (the codebook term ||sg[z_e] - e||^2 of Eq. 3)
    c.vq.ema_decay = 0.99              # 'ema': gamma
    c.vq.ema_epsilon = 1e-5            # 'ema': Laplace smoothing of the counts
    c.vq.restart_threshold = 0.0       # 'ema': codes whose running count falls below it
                                       # restart at a random encoding (Jukebox); 0 = never

    c.prior = config_dict.ConfigDict()  # family 'vq_prior': a causal transformer over the
                                       # code grid of a trained VQ-VAE; jaxgen/train/vq_prior.py
    c.prior.vqvae_workdir = ""         # the trained family-'vqvae' run (required)
    c.prior.num_layers = 4             # transformer blocks
    c.prior.embed_dim = 128            # token width (divisible by num_heads)
    c.prior.num_heads = 4              # attention heads
    c.prior.mlp_ratio = 4              # MLP hidden width / embed_dim

    c.eval = config_dict.ConfigDict()
    c.eval.num_samples = 1000          # samples per sample-quality evaluation; 0 disables it
    c.eval.batch_size = 250            # samples per sampler call
    c.eval.feature_net = ""            # images: a FeatureExtractor file (experiments/train_
                                       # classifier.py) or InceptionV3 .npz; '' = no FD/KID/PR
    c.eval.reference_split = ""        # '': data.eval_split
    c.eval.every = 0                   # sample quality every N training steps; 0 = never
    c.eval.likelihood = False          # --mode=eval also reports bits/dim: the variational
                                       # bound of a discrete DDPM (all T steps per batch)
    return c
