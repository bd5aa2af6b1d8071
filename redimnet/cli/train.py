"""``redimnet train --config FILE.yaml [--resume]``: train a ReDimNet speaker model."""

import argparse


def register(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a model from a YAML recipe (see configs/)",
        description="Train a ReDimNet speaker-embedding model as a YAML config describes. Run under "
                    "'torchrun --nproc_per_node N -m redimnet train ...' for several GPUs (or CPU processes).")
    parser.add_argument("--config", required=True, metavar="FILE.yaml", help="training recipe")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest training state in train.output_dir")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (YAML syntax), e.g. --set train.epochs=3; repeatable")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..training.config import load_config
    from ..training.trainer import train

    config = load_config(args.config, args.overrides)
    result = train(config, resume=args.resume)
    if result.final_model is not None:
        print(result.final_model)
    return 0
