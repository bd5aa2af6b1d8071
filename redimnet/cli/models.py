"""Choosing a model on the command line: published weights by name, or a checkpoint file.

Every name comes from :mod:`redimnet.hub.registry`, the table that
``redimnet.load`` and ``hubconf.py`` read too:

* ``--model NAME`` -- published weights, downloaded once and cached. NAME is
  ``b2.vox2-ft_lm`` (architecture.dataset-train_type), a shortened tag
  (``b2.ptn``), or an architecture alone for its default weights; the older
  ``--model b2 --train-type ptn --dataset vox2`` still works.
* no model option -- the default model, :data:`redimnet.hub.registry.DEFAULT_WEIGHTS`.
* ``--checkpoint PATH`` -- a file in the official release format.
* ``--model NAME --random-init`` -- the architecture with random weights (for
  testing the plumbing; its embeddings mean nothing).

``--sha256 HEX`` makes the weights file (published or ``--checkpoint``) match that hash.
"""

import argparse
import os

from ..errors import CheckpointError, PretrainedError
from ..hub import registry
from ..models.checkpoint import load_checkpoint
from .common import UsageError


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = False):
    """Add ``--model``/``--checkpoint`` and their options; without either, the default model is used.

    ``required`` is kept for callers of the older signature; a default model
    now always exists, so it changes nothing.
    """
    del required
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--model",
        metavar="NAME",
        help=f"published model (default {registry.DEFAULT_WEIGHTS}): one of "
        f"{', '.join(registry.list_weights())}, or an architecture name "
        f"({', '.join(registry.list_models())}) for its default weights; "
        "downloaded once, then cached",
    )
    group.add_argument("--checkpoint", metavar="PATH", help="checkpoint file in the official release format")
    parser.add_argument(
        "--train-type",
        metavar="T",
        help="with --model ARCH: ptn, ft_lm or ft_mix; lm or ptn for ReDimNet2 "
        "(default: the architecture's default weights)",
    )
    parser.add_argument(
        "--dataset",
        metavar="D",
        help="with --model ARCH: vox2, vb2 or vb2+vox2+cnc; vox2 or vb2+vox2_v0 for ReDimNet2 "
        "(default: the architecture's default)",
    )
    parser.add_argument("--sha256", metavar="HEX", help="refuse the weights file unless it has this SHA-256")
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where downloaded weights are kept (default $REDIMNET_CACHE or torch hub's checkpoints)",
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="build the architecture of --model (or of the default model) with random weights "
        "instead of downloading (for tests only)",
    )


def weights_from_arguments(args) -> registry.Weights:
    """The registry entry ``--model`` (with ``--train-type``/``--dataset``) names, or the default model."""
    name = getattr(args, "model", None)
    train_type, dataset = getattr(args, "train_type", None), getattr(args, "dataset", None)
    if name is not None and "." in name and (train_type is not None or dataset is not None):
        raise UsageError(f"--model {name} already names the weights; drop --train-type/--dataset")
    return registry.resolve_weights(name, train_type, dataset)


def model_from_arguments(args):
    """The model the arguments name, in eval mode."""
    sha256 = getattr(args, "sha256", None)
    if getattr(args, "checkpoint", None):
        if sha256 is not None:
            from ..hub.pretrained import sha256_of

            actual = sha256_of(args.checkpoint) if os.path.isfile(args.checkpoint) else None
            if actual is not None and actual != sha256.strip().lower():
                raise CheckpointError(f"{args.checkpoint} has SHA-256 {actual}, not the {sha256} given by --sha256")
        return load_checkpoint(args.checkpoint)
    if getattr(args, "random_init", False):  # the architecture of the named (or default) weights
        from ..hub.pretrained import build

        named = getattr(args, "model", None)
        return build(named.split(".")[0] if named else weights_from_arguments(args).arch).eval()
    from ..hub.pretrained import load_weights

    try:
        return load_weights(weights_from_arguments(args), cache_dir=getattr(args, "cache_dir", None), sha256=sha256)
    except PretrainedError as error:
        raise PretrainedError(f"{error}. {OFFLINE_HINT}") from None


# Said whenever published weights cannot be had: every verb runs without them.
OFFLINE_HINT = (
    "Meanwhile every command runs without the download: --checkpoint FILE uses a checkpoint file you have "
    "(official release format), --random-init random weights (to try the commands; the scores mean nothing)"
)
