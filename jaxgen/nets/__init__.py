"""Flax Linen backbones (architectures only: no losses, no schedules)."""

from jaxgen.nets.conv import Conv, conv2d
from jaxgen.nets.dit import DIT_SIZES, DiT, dit_kwargs, patchify, unpatchify
from jaxgen.nets.embeddings import TimeEmbedding, sinusoidal_embedding
from jaxgen.nets.layers import TIME_CONDITIONING, Attention, Downsample, ResBlock, Upsample
from jaxgen.nets.mlp import MLP
from jaxgen.nets.norm import GroupNorm, group_norm
from jaxgen.nets.unet import UNet

MODELS = ("unet", "mlp", "dit")


def build(model_cfg, *, out_channels: int, num_classes=None):
    """Builds the backbone named ``model_cfg.name`` from its config section.

    Args:
      model_cfg: the config's ``model`` section.
      out_channels: size of the data's last axis (image channels, or D for (N, D) data).
      num_classes: number of classes for a class-conditional model (None: unconditional).
    """
    if model_cfg.name == "unet":
        return UNet(out_channels=out_channels,
                    block_channels=tuple(model_cfg.block_channels),
                    attention=tuple(bool(a) for a in model_cfg.attention),
                    layers_per_block=model_cfg.layers_per_block,
                    mid_attention=model_cfg.mid_attention,
                    num_groups=model_cfg.num_groups,
                    head_dim=model_cfg.head_dim,
                    time_conditioning=model_cfg.time_conditioning,
                    num_classes=num_classes,
                    dropout=model_cfg.dropout,
                    remat=model_cfg.get("remat", False))
    if model_cfg.name == "mlp":
        return MLP(out_dim=out_channels,
                   hidden_dim=model_cfg.hidden_dim,
                   num_layers=model_cfg.num_layers,
                   num_classes=num_classes,
                   dropout=model_cfg.dropout)
    if model_cfg.name == "dit":
        # model.dit_size 'S'/'B'/'L'/'XL' (Peebles & Xie 2023, Table 1) sets depth, width
        # and heads; '' takes them from model.depth, model.hidden_size, model.num_heads.
        size = (dit_kwargs(model_cfg.dit_size) if model_cfg.dit_size else
                {"depth": model_cfg.depth, "hidden_size": model_cfg.hidden_size,
                 "num_heads": model_cfg.num_heads})
        return DiT(out_channels=out_channels, patch_size=model_cfg.patch_size,
                   mlp_ratio=float(model_cfg.mlp_ratio), num_classes=num_classes,
                   dropout=model_cfg.dropout, remat=model_cfg.get("remat", False), **size)
    raise ValueError(f"model.name must be one of {MODELS}, got {model_cfg.name!r}")


__all__ = ["Attention", "Conv", "DIT_SIZES", "DiT", "Downsample", "GroupNorm", "MLP", "MODELS",
           "ResBlock", "TIME_CONDITIONING", "TimeEmbedding", "UNet", "Upsample", "build",
           "conv2d", "dit_kwargs", "group_norm", "patchify", "sinusoidal_embedding",
           "unpatchify"]
