"""The ``redimnet`` command line: one module per verb, errors as plain messages.

Each verb module defines ``register(subparsers)``, which adds its parser and
sets ``handler`` to a function taking the parsed arguments and returning an
exit status.  Failures the user can fix (bad files, bad options, a missing
optional package) are printed as one ``redimnet: error: ...`` line, never as
a traceback; see :func:`run_handler`.  Warnings of the package or of the
libraries it uses become one ``redimnet: note: ...`` line each (no source
file, line or code).  Options are never abbreviated (``--token`` is not
``--token-file``), and an unknown option is named without the value after it.
Shared pieces live in :mod:`redimnet.cli.common`.
"""

import argparse
import errno
import gc
import importlib
import os
import sys
import traceback
import warnings
from typing import Callable, List, Optional

from .._utils.names import printable
from .._utils.optional import MissingDependencyError, install_hint
from ..errors import INTERNAL, RedimnetError, category_of
from .common import Parser

# Verb modules, in the order their commands are listed in --help.
VERB_MODULES = [
    "demo",
    "info",
    "embed",
    "verify",
    "enroll",
    "evaluate",
    "cohort",
    "calibrate",
    "prepare",
    "train",
    "average",
    "export",
    "vad",
    "diarize",
    "der",
    "serve",
]


# Module name -> the command it registers, where they differ (for the stand-in of a verb that cannot load).
_COMMAND_NAMES = {"evaluate": "eval"}


def _verb_modules(names=None):
    for name in names or VERB_MODULES:
        try:
            yield importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"{__name__}.{name}":
                continue  # a verb this installation does not ship
            command = _COMMAND_NAMES.get(name, name)
            hint = install_hint(error.name, f"'redimnet {command}'")
            if hint is None:
                raise
            yield _Unavailable(command, hint)


class _Unavailable:
    """Stands in for a verb whose module needs a missing optional package: the verb is listed and says so."""

    def __init__(self, command: str, hint: str):
        self.command, self.hint = command, hint

    def register(self, subparsers) -> None:
        # no option prefix: whatever follows the command is accepted, so the verb can say what it needs
        parser = subparsers.add_parser(
            self.command, help=f"(unavailable: {self.hint})", description=self.hint, prefix_chars="\0", add_help=False
        )
        parser.add_argument("arguments", nargs="*", help=argparse.SUPPRESS)
        parser.set_defaults(handler=self.run)

    def run(self, _args) -> int:
        raise MissingDependencyError(self.hint)


class _WideHelp(argparse.HelpFormatter):
    """Room for the longest verb name beside its help line."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=24, width=100)


def _module_of(argv: Optional[List[str]]) -> Optional[str]:
    """The verb module that handles ``argv``'s command, when the command names one directly."""
    if not argv:
        return None
    command = argv[0]
    name = {command: module for module, command in _COMMAND_NAMES.items()}.get(command, command)
    return name if name in VERB_MODULES else None


def build_parser(argv: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """The command-line parser; given ``argv`` whose command names its verb module, only that verb's
    module is imported (each verb starts without loading the others' dependencies)."""
    parser = Parser(
        prog="redimnet",
        description="ReDimNet speaker embeddings: model information, embedding, verification, evaluation.",
        formatter_class=_WideHelp,
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"redimnet {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    only = _module_of(argv)
    for verb in _verb_modules([only] if only else None):
        verb.register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the verb, return the exit status.

    Without ``argv`` this is the program itself (the ``redimnet`` command, ``python -m
    redimnet``): a process that starts, runs one command and ends, whose garbage collector
    is kept off what start-up builds (see :func:`program_started`).
    """
    if argv is not None:
        return _main(argv)
    gc.disable()  # imports build long-lived objects, not garbage: nothing to look for until they are done
    try:
        return _main(sys.argv[1:], started=program_started)
    finally:
        program_ending()


def program_started() -> None:
    """The program's imports are done: keep the garbage collector off everything they built.

    With torch imported a process holds a few hundred thousand objects that live as long as it
    does, and every full collection walks all of them (about 0.1 s of CPU each on the build
    machine; a few happen while torch is imported and a model is loaded).  ``gc.freeze()``
    takes them out of the collector's sight: collections then look at what the command itself
    creates.  The decoding workers forked later also leave those objects' pages shared.
    """
    gc.freeze()
    gc.enable()


def program_ending() -> None:
    """The command has finished and the process ends next: spare the interpreter its last
    collections over every object left (about 0.4 s of CPU with torch loaded).  Objects are
    still released as their references go, outputs were closed by the command, and the
    memory returns to the system with the process."""
    gc.freeze()


def _main(argv: List[str], started: Optional[Callable[[], None]] = None) -> int:
    parsed = {}

    def parse(_args):
        parser = build_parser(argv)
        parsed["args"] = parser.parse_args(argv)
        if not hasattr(parsed["args"], "handler"):
            parser.print_help()
            return 2
        return 0

    status = run_handler(parse, None)  # even building the parser follows the error policy
    if "args" not in parsed or status != 0:
        return status
    if started is not None:
        started()
    return run_handler(parsed["args"].handler, parsed["args"])


def run_handler(handler, args) -> int:
    """Run a verb's handler, turning errors into messages and exit statuses.

    * :class:`redimnet.errors.RedimnetError` (bad input, bad options, unusable
      files): one ``redimnet: error: ...`` line, the exit status of its
      category (:data:`redimnet.errors.CATALOGUE`: 2);
    * ``OSError`` (a file that cannot be read or written): one line, exit 2;
    * a missing optional dependency: which extra to install, exit 2;
    * anything else is a bug: one line naming the exception and
      "set REDIMNET_DEBUG=1 to see the traceback", the exit status of
      :data:`redimnet.errors.INTERNAL` (1).

    With ``REDIMNET_DEBUG=1`` in the environment the full traceback is printed
    first in every case.
    """
    debug = bool(os.environ.get("REDIMNET_DEBUG"))
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _show_warning
            return int(handler(args) or 0)
    except KeyboardInterrupt:
        _traceback_if(debug)
        print("redimnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `redimnet info | head -3`): not an error worth a message; send what is
        # still buffered to nowhere so the interpreter's own flush at exit does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except RedimnetError as error:
        _traceback_if(debug)
        print(f"redimnet: error: {error_text(error)}", file=sys.stderr)
        return category_of(error).exit_status
    except ModuleNotFoundError as error:
        _traceback_if(debug)
        hint = install_hint(error.name)
        if hint is None:
            return _unexpected(error, debug)
        print(f"redimnet: error: {hint}", file=sys.stderr)
        return 2
    except OSError as error:
        _traceback_if(debug)
        print(f"redimnet: error: {_describe_os_error(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        _traceback_if(debug)
        return _unexpected(error, debug)


def error_text(error: object) -> str:
    """An error's text for the terminal: one line (line breaks kept as spaces), control characters escaped
    (an ANSI sequence or a bidirectional override from a file or its name is shown, never obeyed)."""
    return printable(" ".join(str(error).split("\n")).strip(), backslashes=False)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one ``redimnet: note:`` line on stderr, without the source location and code."""
    stream = sys.stderr if file is None else file
    try:
        stream.write(f"redimnet: note: {error_text(message)}\n")
    except (OSError, ValueError):  # stderr closed or gone: nowhere to say it
        pass


def _traceback_if(debug: bool) -> None:
    if debug:
        traceback.print_exc()


def _unexpected(error: BaseException, debug: bool) -> int:
    first = (str(error).strip().splitlines() or [""])[0]
    hint = "" if debug else "; set REDIMNET_DEBUG=1 to see the traceback"
    print(
        f"redimnet: unexpected error ({type(error).__name__}: {printable(first)}){hint}. "
        "This is a bug; please report it.",
        file=sys.stderr,
    )
    return INTERNAL.exit_status


def _describe_os_error(error: OSError) -> str:
    """``OSError`` as one line: what failed, on which file, without Python's ``[Errno N]`` noise."""
    what = error.strerror or str(error) or type(error).__name__
    if error.errno == errno.ELOOP:
        what = "symbolic link loop (the link points, directly or not, at itself)"
    names = [n for n in (error.filename, error.filename2) if n is not None]
    if names:
        return f"{' -> '.join(printable(os.fsdecode(n)) for n in names)}: {what}"
    return what


if __name__ == "__main__":
    sys.exit(main())
