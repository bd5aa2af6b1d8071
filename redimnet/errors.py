"""Exceptions users see.  Every message says what is wrong, where, and how to fix it."""


class RedimnetError(Exception):
    """Base class of the errors this package raises on bad input."""


class CheckpointError(RedimnetError):
    """A checkpoint file cannot be used."""


class InvalidArgumentError(RedimnetError, ValueError):
    """A value given to the library (an option or argument) cannot be used; the message says which and why."""


class ConfigError(InvalidArgumentError):
    """A configuration cannot be used: a model's options (``ModelConfig``, ``ReDimNet2Config``), a training
    config or recipe; the message names the option (and the file, where there is one)."""


class UnknownModelError(InvalidArgumentError):
    """A name that is not in the registry, or an architecture that cannot be built from its name alone."""


class RedimnetWarning(UserWarning):
    """Something worked, but not as asked (e.g. the model runs unoptimised)."""


class PretrainedError(RedimnetError):
    """Published weights cannot be found, downloaded or verified."""


class TrainingError(RedimnetError):
    """Training cannot go on (too much unreadable audio, a resume that does not fit, ...)."""
