"""``redimnet info``: the registry's models and weights, or a checkpoint's configuration and size.

Without ``--count`` it prints the numbers stored in :mod:`redimnet.hub.registry`
(nothing is built, so it answers at once); ``--count`` builds the network and
counts parameters and multiply-accumulates for ``--seconds`` of audio.
"""

import json

from .._utils import threads
from .._utils.validation import positive
from ..hub import registry
from .common import UsageError

STORED_SECONDS = 2.0  # the registry stores MACs for 2 s of audio


def _build(name: str):
    """A randomly initialised network of architecture ``name``, in eval mode (imports PyTorch)."""
    from ..hub.pretrained import build

    return build(name).eval()


def register(subparsers):
    parser = subparsers.add_parser(
        "info",
        help="list the models and published weights, or describe one",
        description="Without a name, list the architectures and their published weights with the stored "
        "parameter counts, GMACs (2 s of audio) and paper EERs. With a NAME (architecture such as b2, "
        "or weights such as b2.vox2-ft_lm) or --checkpoint PATH, print the configuration too. "
        "--count builds the network and counts instead of printing stored numbers.",
    )
    parser.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help=f"architecture ({', '.join(registry.list_models())}) or weights (e.g. {registry.DEFAULT_WEIGHTS})",
    )
    parser.add_argument("--checkpoint", metavar="PATH", help="describe this checkpoint file instead (counts always)")
    parser.add_argument(
        "--count",
        action="store_true",
        help="build the network(s) and count parameters and GMACs (slow) instead of stored numbers",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="with --count or --checkpoint: audio length for the GMACs (default 2.0)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    threads.add_threads_argument(parser)
    parser.set_defaults(handler=run)


def _counted(model, seconds: float) -> dict:
    from ..models.complexity import count_macs, count_parameters

    return {
        "parameters": count_parameters(model),
        "gmacs": count_macs(model, seconds) / 1e9,
        "seconds": seconds,
        "counted": True,
    }


def _stored(arch: registry.Architecture) -> dict:
    return {"parameters": arch.parameters, "gmacs": arch.gmacs_2s, "seconds": STORED_SECONDS, "counted": False}


def _weights_rows(arch: registry.Architecture) -> list:
    rows = []
    for name in registry.list_weights(arch.name):
        weights = registry.get_weights(name)
        rows.append(
            {
                "name": weights.name,
                "file": weights.file_name,
                "url": weights.url,
                "license": weights.license,
                "dataset": weights.dataset,
                "train_type": weights.train_type,
                "eer": weights.eer,
                "sha256": weights.sha256,
                "size": weights.size,
            }
        )
    return rows


def _print_config(config: dict):
    print("configuration:")
    for key, value in config.items():
        if key == "stages_setup":
            print("  stages_setup:  (stride, num_blocks, conv_exp, kernel_sizes, att_block_red)")
            for index, stage in enumerate(value):
                print(f"    stage {index}: {stage}")
        else:
            print(f"  {key}: {value!r}")


def _print_size(facts: dict):
    if facts["parameters"] is None:
        print(
            "parameters, GMACs: not stored (the configuration is published only inside the weight files; "
            "download one and run 'redimnet info --checkpoint FILE')"
        )
        return
    source = "" if facts["counted"] else "  (stored; --count to measure)"
    print(f"parameters: {facts['parameters']:,} ({facts['parameters'] / 1e6:.2f} M){source}")
    print(f"GMACs for {facts['seconds']:g} s of audio: {facts['gmacs']:.3f}")


def run(args) -> int:
    if args.seconds is not None:
        positive("--seconds", args.seconds)
    if args.name and args.checkpoint:
        raise UsageError("give either a NAME or --checkpoint PATH, not both")
    seconds = STORED_SECONDS if args.seconds is None else args.seconds
    if args.count or args.checkpoint:
        threads.configure(args.threads)  # only then does anything run (the stored table needs no torch)
    if args.checkpoint:
        from ..models.checkpoint import load_checkpoint

        model = load_checkpoint(args.checkpoint)
        facts = {"name": args.checkpoint, "config": model.config.to_dict(), **_counted(model, seconds)}
        return _print_one(facts, None, args.json)
    if args.seconds is not None and not args.count:
        raise UsageError(f"--seconds needs --count: the stored GMACs are for {STORED_SECONDS:g} s of audio")
    if not args.name:
        return _list(args, seconds)
    weights = registry.get_weights(args.name) if "." in args.name else None
    arch = weights.architecture if weights else registry.get_architecture(args.name)
    config = arch.config.to_dict() if arch.buildable else None
    size = _counted(_build(arch.name), seconds) if args.count else _stored(arch)
    facts = {
        "name": weights.name if weights else arch.name,
        "architecture": arch.name,
        "family": arch.family,
        "config": config,
        **size,
        "paper_params_m": arch.paper_params_m,
        "paper_gmacs": arch.paper_gmacs,
        "paper_eer": arch.paper_eer,
        "paper_eer_asnorm": arch.paper_eer_asnorm,
        "notes": arch.notes,
        "weights": [w for w in _weights_rows(arch) if weights is None or w["name"] == weights.name],
    }
    return _print_one(facts, arch, args.json)


def _print_one(facts: dict, arch, as_json: bool) -> int:
    if as_json:
        print(json.dumps(facts, indent=2, default=list))
        return 0
    if arch is None:
        print(facts["name"])
    else:  # "ReDimNet-B2" as the paper writes it; other families' names are already complete
        print(f"ReDimNet-{arch.name.upper()}" if arch.family == "redimnet" else arch.name)
    if facts["config"] is not None:
        _print_config(facts["config"])
    elif arch is not None:
        print(f"configuration: {arch.notes}")
    _print_size(facts)
    if arch is not None and arch.paper_eer is not None:
        o, e, h = arch.paper_eer
        print(
            f"paper: {arch.paper_params_m:.1f} M parameters, {arch.paper_gmacs:.2f} GMACs; "
            f"Vox1-O/E/H EER {o:.2f} / {e:.2f} / {h:.2f} % (LM fine-tuned, no AS-Norm)"
        )
    for row in facts.get("weights", []):
        eer = "" if row["eer"] is None else " EER " + " / ".join(f"{v:g}" for v in row["eer"]) + " %"
        sha = f" sha256 {row['sha256'][:12]}..." if row["sha256"] else ""
        print(f"weights {row['name']}: {row['license']}{eer}{sha}")
    return 0


def _list(args, seconds: float) -> int:
    rows = []
    for name in registry.list_models():
        arch = registry.get_architecture(name)
        if args.count and arch.buildable:
            size = _counted(_build(name), seconds)
        else:
            size = _stored(arch)
        rows.append(
            {
                "name": name,
                "family": arch.family,
                **size,
                "paper_eer_vox1_o": None if arch.paper_eer is None else arch.paper_eer[0],
                "weights": registry.list_weights(name),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(row["name"]) for row in rows)
    print(f"{'model':<{width}} {'params':>9} {'GMACs/' + format(seconds, 'g') + 's':>10} {'Vox1-O EER %':>13}  weights")
    for row in rows:
        params = "-" if row["parameters"] is None else f"{row['parameters'] / 1e6:.2f}M"
        gmacs = "-" if row["gmacs"] is None else f"{row['gmacs']:.3f}"
        eer = "-" if row["paper_eer_vox1_o"] is None else f"{row['paper_eer_vox1_o']:.2f}"
        tags = ", ".join(w.split(".", 1)[1] for w in row["weights"])
        print(f"{row['name']:<{width}} {params:>9} {gmacs:>10} {eer:>13}  {tags}")
    print(
        f"default model: {registry.DEFAULT_WEIGHTS}; M and S weights are CC BY-NC-SA 4.0 (non-commercial), "
        "the others MIT"
    )
    return 0
