"""``redimnet info``: configuration, parameter count and GMACs of a model."""

import json

from .. import threads
from ..checkpoint import load_checkpoint
from ..complexity import count_macs, count_parameters
from ..registry import build, get_preset, list_models
from .common import UsageError


def register(subparsers):
    parser = subparsers.add_parser(
        "info", help="show a model's configuration, parameters and GMACs",
        description="Print the configuration, parameter count and multiply-accumulates (GMACs for "
                    "--seconds of audio) of a preset or a checkpoint. Without a name, list the presets.")
    parser.add_argument("name", nargs="?", metavar="NAME", help=f"preset ({', '.join(list_models())})")
    parser.add_argument("--checkpoint", metavar="PATH", help="describe this checkpoint file instead of a preset")
    parser.add_argument("--seconds", type=float, default=2.0, help="audio length for the GMACs (default 2.0)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    threads.add_threads_argument(parser)
    parser.set_defaults(handler=run)


def _describe(model, seconds: float) -> dict:
    return {
        "config": model.config.to_dict(),
        "parameters": count_parameters(model),
        "gmacs": count_macs(model, seconds) / 1e9,
        "seconds": seconds,
    }


def _print_config(config: dict):
    print("configuration:")
    for key, value in config.items():
        if key == "stages_setup":
            print("  stages_setup:  (stride, num_blocks, conv_exp, kernel_sizes, att_block_red)")
            for index, stage in enumerate(value):
                print(f"    stage {index}: {stage}")
        else:
            print(f"  {key}: {value!r}")


def run(args) -> int:
    if args.seconds <= 0:
        raise UsageError(f"--seconds must be positive, got {args.seconds}")
    if args.name and args.checkpoint:
        raise UsageError("give either a preset NAME or --checkpoint PATH, not both")
    threads.configure(args.threads)
    if not args.name and not args.checkpoint:
        return _list_presets(args)
    if args.checkpoint:
        model, title, preset = load_checkpoint(args.checkpoint), args.checkpoint, None
    else:
        preset = get_preset(args.name)
        model, title = build(preset.name).eval(), f"ReDimNet-{preset.name.upper()}"
    facts = _describe(model, args.seconds)
    if args.json:
        print(json.dumps({"name": title, **facts}, indent=2, default=list))
        return 0
    print(title)
    _print_config(facts["config"])
    print(f"parameters: {facts['parameters']:,} ({facts['parameters'] / 1e6:.2f} M)")
    print(f"GMACs for {args.seconds:g} s of audio: {facts['gmacs']:.3f}")
    if preset is not None:
        o, e, h = preset.paper_eer
        print(f"paper: {preset.paper_params_m:.1f} M parameters, {preset.paper_gmacs:.2f} GMACs; "
              f"Vox1-O/E/H EER {o:.2f} / {e:.2f} / {h:.2f} % (LM fine-tuned, no AS-Norm)")
    return 0


def _list_presets(args) -> int:
    rows = []
    for name in list_models():
        preset = get_preset(name)
        model = build(name).eval()
        rows.append({"name": name, "parameters": count_parameters(model),
                     "gmacs": count_macs(model, args.seconds) / 1e9, "paper_eer_vox1_o": preset.paper_eer[0]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<6} {'params':>9} {'GMACs/' + format(args.seconds, 'g') + 's':>10} {'Vox1-O EER %':>13}")
    for row in rows:
        print(f"{row['name']:<6} {row['parameters'] / 1e6:>8.2f}M {row['gmacs']:>10.3f} {row['paper_eer_vox1_o']:>13.2f}")
    return 0
