"""The ``redimnet`` command line: one module per verb, errors as plain messages.

Each verb module defines ``register(subparsers)``, which adds its parser and
sets ``handler`` to a function taking the parsed arguments and returning an
exit status.  Failures the user can fix (bad files, bad options) are printed
as one ``redimnet: error: ...`` line, never as a traceback.
"""

import argparse
import importlib
import os
import sys
from typing import List, Optional

from ..errors import RedimnetError

# Verb modules, in the order their commands are listed in --help.
VERB_MODULES = ["info", "embed", "verify", "enroll", "evaluate", "cohort", "prepare", "train", "average", "export"]


def _verb_modules():
    for name in VERB_MODULES:
        try:
            yield importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redimnet",
        description="ReDimNet speaker embeddings: model information, embedding, verification, evaluation.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"redimnet {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for verb in _verb_modules():
        verb.register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    return run_handler(args.handler, args)


def run_handler(handler, args) -> int:
    """Run a verb's handler, turning errors into one-line messages and exit statuses."""
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("redimnet: interrupted", file=sys.stderr)
        return 130
    except (RedimnetError, ValueError, OSError) as error:
        print(f"redimnet: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # last resort: still no traceback unless asked for
        if os.environ.get("REDIMNET_DEBUG"):
            raise
        print(f"redimnet: unexpected error ({type(error).__name__}): {error}\n"
              "Set REDIMNET_DEBUG=1 to see the traceback, and please report it.", file=sys.stderr)
        return 1

if __name__ == "__main__":
    sys.exit(main())
