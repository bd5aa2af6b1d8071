"""Choosing a model on the command line: published weights by name, or a checkpoint file.

``--model NAME [--train-type T --dataset D]`` loads published weights through
:func:`redimnet.pretrained.from_pretrained` (downloaded once, then cached);
``--checkpoint PATH`` loads a file in the official release format;
``--model NAME --random-init`` builds the preset with random weights (for
testing the plumbing; its embeddings mean nothing).
"""

import argparse

from ..checkpoint import load_checkpoint
from ..registry import build, get_preset, list_models
from .common import UsageError


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True):
    from ..pretrained import list_pretrained

    names = sorted({r.model_name for r in list_pretrained()}, key=lambda n: (n[0].islower(), n))
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--model", metavar="NAME",
                       help=f"published model to download and use ({', '.join(names)}); see --train-type, --dataset")
    group.add_argument("--checkpoint", metavar="PATH", help="checkpoint file in the official release format")
    parser.add_argument("--train-type", default="ft_lm", metavar="T",
                        help="with --model: ptn, ft_lm or ft_mix (default ft_lm)")
    parser.add_argument("--dataset", default="vox2", metavar="D",
                        help="with --model: vox2, vb2 or vb2+vox2+cnc (default vox2)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where downloaded weights are kept (default $REDIMNET_CACHE or torch hub's checkpoints)")
    parser.add_argument("--random-init", action="store_true",
                        help=f"with --model: build the preset ({', '.join(list_models())}) with random weights "
                             "instead of downloading (for tests only)")


def model_from_arguments(args):
    """The model the arguments name, in eval mode."""
    if getattr(args, "checkpoint", None):
        return load_checkpoint(args.checkpoint)
    if getattr(args, "random_init", False):
        get_preset(args.model)  # a clear error for unknown names
        return build(args.model).eval()
    if not getattr(args, "model", None):
        raise UsageError("name a model with --model NAME or --checkpoint PATH")
    from ..pretrained import from_pretrained

    return from_pretrained(args.model, train_type=getattr(args, "train_type", "ft_lm"),
                           dataset=getattr(args, "dataset", "vox2"), cache_dir=getattr(args, "cache_dir", None))
