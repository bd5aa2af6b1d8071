"""Pieces every verb of the command line shares: usage errors, per-file reasons, terminal-safe names.

Only the command line decides messages and exit statuses; the library raises
:class:`redimnet.errors.RedimnetError` subclasses (see :func:`redimnet.cli.run_handler`).
"""

import argparse
import difflib
import re
from typing import List

from .._utils.names import printable
from ..errors import RedimnetError

__all__ = ["Parser", "UsageError", "reason", "show"]

_NUMBER = re.compile(r"-\d|-\.\d")


class Parser(argparse.ArgumentParser):
    """The parser of every verb (sub-parsers take the class of their parent).

    * No abbreviations: ``--token`` is an unknown option, not ``--token-file``, so an option added
      later never changes what an old command line means.
    * An unknown option is named without the words after it (``--token SECRET`` does not print
      ``SECRET``), with the closest known options as a hint.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:  # nothing may be left over, and the message is ours (see _unrecognised)
            self.error(self._unrecognised(extras))
        return namespace, extras

    def _unrecognised(self, extras: List[str]) -> str:
        options = [word.split("=", 1)[0] for word in extras if word.startswith("-") and not _NUMBER.match(word)]
        if not options:
            return f"unrecognized arguments: {' '.join(printable(word) for word in extras)}"
        known = [name for name in self._option_string_actions if name.startswith("--")]
        hints = []
        for option in options:
            close = [name for name in known if name.startswith(option)] or difflib.get_close_matches(option, known)
            if close:
                prefix = "" if len(options) == 1 else f"{printable(option)}: "
                hints.append(f"{prefix}did you mean {' or '.join(close[:3])}?")
        others = len(extras) - len(options)
        hidden = f"; {others} more word{'s' if others > 1 else ''} not shown" if others else ""
        text = f"unrecognized option{'s' if len(options) > 1 else ''} {' '.join(printable(o) for o in options)}"
        return "; ".join([f"{text} (options are never abbreviated{hidden})", *hints])


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
