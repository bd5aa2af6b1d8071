"""``redimnet average CKPT... -o OUT [--last K]``: average model snapshots into one checkpoint."""

import argparse
from pathlib import Path

from .._utils.validation import at_least
from .common import UsageError
from .outputs import CHECKPOINT, Inputs, check_output


def register(subparsers):
    parser = subparsers.add_parser(
        "average",
        help="average the weights of model checkpoints (e.g. the last K of a training run)",
        description="Average release-format checkpoints of one training run into OUT. A folder argument "
        "stands for its model snapshots (model_stepN.pt, in step order; a run's output folder "
        "means its checkpoints/ subfolder).",
    )
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoint files or folders")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="averaged checkpoint to write")
    parser.add_argument("--last", type=int, default=None, metavar="K", help="use only the last K checkpoints")
    parser.set_defaults(handler=run)


def collect_checkpoints(arguments) -> list:
    """Files named by the arguments, folders expanded to their snapshots in step order."""
    from ..training.checkpointing import model_snapshots

    files = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = model_snapshots(path) or model_snapshots(path / "checkpoints")
            if not found:
                raise UsageError(f"{path} holds no model snapshots (model_stepN.pt)")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"checkpoint not found: {path}")
    return files


def run(args: argparse.Namespace) -> int:
    from ..training.checkpointing import average_checkpoints

    files = collect_checkpoints(args.checkpoints)
    if args.last is not None:
        at_least("--last", args.last, 1)
        files = files[-args.last :]
    output = average_checkpoints(files, check_output(args.output, CHECKPOINT, Inputs(*files)))
    print(f"averaged {len(files)} checkpoint(s) into {output}")
    return 0
