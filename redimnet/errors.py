"""Exceptions users see, and the catalogue that says how each adapter reports them.

Every message says what is wrong, where, and how to fix it.  Every error class of the package
belongs to one :class:`ErrorCategory` (its ``category`` attribute; :data:`INVALID` unless it says
otherwise), and :data:`CATALOGUE` is the one table from a category to the command line's exit status
and the HTTP service's status and error code.  :func:`category_of` reads it for any exception: the
command line (:func:`redimnet.cli.run_handler`) and the service (:mod:`redimnet.service.app`) report
errors through it and nothing else.
"""

from dataclasses import dataclass
from typing import ClassVar, Tuple


@dataclass(frozen=True)
class ErrorCategory:
    """How an error is reported: ``exit_status`` by the command line, ``http_status`` with ``{"error":
    {"code": code, ...}}`` by the service."""

    name: str
    exit_status: int
    http_status: int
    code: str
    meaning: str


INVALID = ErrorCategory("invalid", 2, 400, "bad_request", "an option, argument, configuration or file the user can fix")
AUDIO = ErrorCategory("audio", 2, 422, "bad_audio", "audio that cannot be decoded or used (named in the message)")
NAME = ErrorCategory("name", 2, 400, "bad_name", "a speaker name or id that is unsafe or not visible as given")
UNKNOWN_SPEAKER = ErrorCategory("unknown_speaker", 2, 404, "unknown_speaker", "no speaker of that name is enrolled")
STORE = ErrorCategory("store", 2, 409, "database", "the speaker store refuses (another model, a newer schema, ...)")
INTERNAL = ErrorCategory("internal", 1, 500, "internal", "anything that is not an error of this package: a bug")

CATALOGUE: Tuple[ErrorCategory, ...] = (INVALID, AUDIO, NAME, UNKNOWN_SPEAKER, STORE, INTERNAL)
"""Every category, with its exit status and HTTP status (docs/architecture.md shows the table)."""


class RedimnetError(Exception):
    """Base class of the errors this package raises on bad input."""

    category: ClassVar[ErrorCategory] = INVALID


def category_of(error: BaseException) -> ErrorCategory:
    """The category an exception is reported as: its class's for the package's errors, else :data:`INTERNAL`."""
    return type(error).category if isinstance(error, RedimnetError) else INTERNAL


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
