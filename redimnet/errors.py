"""Exceptions users see.  Every message says what is wrong, where, and how to fix it."""


class RedimnetError(Exception):
    """Base class of the errors this package raises on bad input."""


class CheckpointError(RedimnetError):
    """A checkpoint file cannot be used."""


class UsageError(RedimnetError):
    """An error in what the user asked for (options, arguments)."""
