"""Pieces every verb of the command line shares: usage errors, per-file reasons, terminal-safe names.

Only the command line decides messages and exit statuses; the library raises
:class:`redimnet.errors.RedimnetError` subclasses (see :func:`redimnet.cli.run_handler`).
"""

from .._utils.names import printable
from ..errors import RedimnetError

__all__ = ["UsageError", "reason", "show"]


class UsageError(RedimnetError):
    """The command line asks for something impossible (bad option values or combinations)."""


def reason(error: BaseException, path) -> str:
    """The message of ``error`` without a leading ``"<path>: "`` (the caller prints the path itself)."""
    text = str(error)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def show(text) -> str:
    """``text`` (an id, speaker name or path from user data) safe to print: control characters escaped."""
    return printable(text)
