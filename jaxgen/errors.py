"""Exceptions raised by jaxgen for bad user input."""


class ConfigError(ValueError):
    """A configuration field holds a value jaxgen cannot run with.

    The message is one line naming the field, the offending value and what is
    allowed, e.g. ``train.batch_size=-3: must be a positive integer``.
    """

    def __init__(self, field: str, value, allowed: str):
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={value!r}: {allowed}")


class DataError(ValueError):
    """A dataset cannot be opened or does not fit the model (bad split, data_dir, ...)."""
