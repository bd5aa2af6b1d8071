"""``redimnet export``: write a model as ONNX or TorchScript for deployment."""

from ..embedding.export import FORMATS, ONNX_INPUTS, export_model, output_path
from .common import UsageError
from .models import add_model_arguments, model_from_arguments
from .outputs import ONNX, TORCHSCRIPT, Inputs, check_output


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX or TorchScript",
        description="Export a preset or checkpoint, front end included, with dynamic batch and time axes. "
        "The exported model takes a float32 16 kHz waveform [N, T] (or, with --features-in, "
        "log-mel features [N, F, frames]) and returns the embeddings [N, embed_dim]. "
        "ONNX export needs the optional packages onnx and onnxruntime.",
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="output format")
    add_model_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")
    parser.add_argument(
        "--precision",
        choices=["float32", "int8"],
        default="float32",
        help="int8: quantise the convolutions and matrix products of the backbone to 8-bit integers "
        "(ONNX only, QDQ format; calibrated on --int8-calibration audio or the speech shipped with the package)",
    )
    parser.add_argument(
        "--int8-calibration",
        action="append",
        default=None,
        metavar="AUDIO",
        help="with --precision int8: audio files or folders of speech to calibrate on (repeatable)",
    )
    parser.add_argument(
        "--features-in",
        action="store_true",
        help="export without the front end: the input is log-mel features [N, F, frames]",
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    if args.precision == "int8" and args.format != "onnx":
        raise UsageError("--precision int8 is written as ONNX only: use --format onnx")
    if args.int8_calibration and args.precision != "int8":
        raise UsageError("--int8-calibration is only used with --precision int8")
    calibration = args.int8_calibration or []
    inputs = Inputs(args.checkpoint, *calibration)
    output = check_output(args.output, ONNX if args.format == "onnx" else TORCHSCRIPT, inputs)
    model = model_from_arguments(args)
    if args.precision == "int8":
        from ..fast.int8 import calibration_waves, quantize_onnx

        waves = calibration_waves(args.int8_calibration)
        path = quantize_onnx(model, output_path(output), waves, features_in=args.features_in)
    else:
        path = export_model(model, output, args.format, features_in=args.features_in)
    kind = f"{ONNX_INPUTS[args.features_in]} {'[N, F, frames]' if args.features_in else '[N, T]'}"
    what = f"{args.format}, int8" if args.precision == "int8" else args.format
    print(f"wrote {path} ({what}; input: {kind}, output: embedding [N, {model.config.embed_dim}])")
    return 0
