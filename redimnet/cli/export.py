"""``redimnet export``: write a model as ONNX or TorchScript for deployment."""

from ..export import FORMATS, export_model
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
        "--features-in",
        action="store_true",
        help="export without the front end: the input is log-mel features [N, F, frames]",
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    output = check_output(args.output, ONNX if args.format == "onnx" else TORCHSCRIPT, Inputs(args.checkpoint))
    model = model_from_arguments(args)
    path = export_model(model, output, args.format, features_in=args.features_in)
    kind = "features [N, F, frames]" if args.features_in else "waveform [N, T]"
    print(f"wrote {path} ({args.format}; input: {kind}, output: embedding [N, {model.config.embed_dim}])")
    return 0
