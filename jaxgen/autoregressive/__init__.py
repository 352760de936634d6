"""Pure autoregressive math: exact likelihoods from logits, the one-loop ancestral sampler,
and the vector quantization of VQ-VAEs whose discrete codes an autoregressive prior models.
Imports jax, numpy and chex only: models are callables ``logits_fn(x) -> logits``, so a
Flax PixelCNN, a transformer or a table of known conditionals plugs in."""

from jaxgen.autoregressive.losses import (bernoulli_nll, binary_to_categorical, bits_per_dim,
                                          categorical_nll)
from jaxgen.autoregressive.quantize import (Quantized, code_counts, dead_codes, ema_codebook,
                                            ema_update, lookup, nearest_code, perplexity,
                                            quantize, restart_dead_codes,
                                            squared_distances)
from jaxgen.autoregressive.sampling import filter_logits, pick, sample

__all__ = [
    "Quantized", "bernoulli_nll", "binary_to_categorical", "bits_per_dim", "categorical_nll",
    "code_counts", "dead_codes", "ema_codebook", "ema_update", "filter_logits", "lookup",
    "nearest_code", "perplexity", "pick", "quantize", "restart_dead_codes", "sample",
    "squared_distances",
]
