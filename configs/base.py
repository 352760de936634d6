"""Defaults shared by every experiment: experiment configs derive from ``get_config()``.

The fields and their defaults are defined in ``jaxgen/defaults.py`` (in the package, so
that runs saved before a field existed load wherever jaxgen is installed).

Fields every config has (scripts may rely on them): seed, data.name, data.split,
data.data_dir, model.name, train.num_steps, train.batch_size, train.log_every,
train.checkpoint_every, train.sample_every.
"""

from jaxgen.defaults import get_config

__all__ = ["get_config"]
