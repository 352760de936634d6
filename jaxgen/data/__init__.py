"""Data sources, toy distributions and the deterministic input pipeline."""

from jaxgen.data.pipeline import PrefetchIterator, Pipeline, epoch_permutation, iterate, preprocess
from jaxgen.data.sources import (
    DIGITS_SPLITS,
    IMAGE_SOURCES,
    STACKED_PREFIX,
    TOY_PREFIX,
    ArraySource,
    TFDSSource,
    digits_source,
    make_source,
    stack_channels,
    stacked_source,
    tfds_source,
)
from jaxgen.data.toy import (
    HAS_LOG_PROB,
    MIXTURES,
    TOY_DISTRIBUTIONS,
    ToySource,
    log_prob,
    mixture_params,
    sample,
    sample_at,
)

__all__ = [
    "ArraySource",
    "DIGITS_SPLITS",
    "HAS_LOG_PROB",
    "IMAGE_SOURCES",
    "MIXTURES",
    "Pipeline",
    "PrefetchIterator",
    "STACKED_PREFIX",
    "TFDSSource",
    "TOY_DISTRIBUTIONS",
    "TOY_PREFIX",
    "ToySource",
    "digits_source",
    "epoch_permutation",
    "iterate",
    "log_prob",
    "make_source",
    "mixture_params",
    "preprocess",
    "sample",
    "sample_at",
    "stack_channels",
    "stacked_source",
    "tfds_source",
]
