"""``redimnet train --config RECIPE [--resume]``: train a ReDimNet speaker model.

``RECIPE`` is a YAML file or the name of a recipe shipped in :mod:`redimnet.recipes`
(``redimnet train --list-configs`` lists them).
"""

import argparse

from .common import UsageError


def register(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a model from a YAML recipe (--list-configs lists the shipped ones)",
        description="Train a ReDimNet speaker-embedding model as a YAML config describes. Run under "
        "'torchrun --nproc_per_node N -m redimnet train ...' for several GPUs (or CPU processes).",
    )
    parser.add_argument(
        "--config",
        metavar="RECIPE",
        help="training recipe: a YAML file, or a shipped recipe's name such as b2_pretrain",
    )
    parser.add_argument("--list-configs", action="store_true", help="list the shipped recipes and exit")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest training state in train.output_dir"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value (YAML syntax), e.g. --set train.epochs=3; repeatable",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..recipes import list_recipes, resolve_config

    if args.list_configs:
        print("\n".join(list_recipes()))
        return 0
    if not args.config:
        raise UsageError("--config is required: a YAML file or a shipped recipe (see --list-configs)")
    from ..training.config import load_config
    from ..training.trainer import train

    config = load_config(resolve_config(args.config), args.overrides)
    result = train(config, resume=args.resume)
    if result.final_model is not None:
        print(result.final_model)
    return 0
