"""Choosing a model on the command line: a preset name or a checkpoint file."""

import argparse

from ..checkpoint import load_checkpoint
from ..registry import build, get_preset, list_models


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True):
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--model", metavar="NAME", help=f"preset name ({', '.join(list_models())})")
    group.add_argument("--checkpoint", metavar="PATH", help="checkpoint file in the official release format")


def model_from_arguments(args):
    """The model the arguments name, in eval mode."""
    if getattr(args, "checkpoint", None):
        return load_checkpoint(args.checkpoint)
    get_preset(args.model)  # a clear error for unknown names
    return build(args.model).eval()
