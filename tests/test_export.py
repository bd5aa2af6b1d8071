"""ONNX and TorchScript exports reproduce the fixtures' embeddings, with dynamic batch and time."""

import argparse

import numpy as np
import pytest
import torch
from conftest import official_file, require_fixtures

import redimnet
from redimnet.cli import export as export_cli
from redimnet.embedding.export import DFTMelFrontEnd, ExportError, export_model, export_onnx, export_torchscript

FIXTURE_NAMES = require_fixtures()
TOLERANCE = 1e-4  # max|ours - expected| <= TOLERANCE * max|expected|


def relative_error(ours, expected) -> float:
    ours, expected = np.asarray(ours), np.asarray(expected)
    assert ours.shape == expected.shape, f"shape {ours.shape} != expected {expected.shape}"
    return float(np.abs(ours - expected).max() / np.abs(expected).max())


def load(name):
    return redimnet.load_checkpoint(official_file(f"{name}.pt")), dict(np.load(official_file(f"{name}.npz")))


@pytest.mark.slow
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_onnx_matches_fixture(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model, expected = load(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # Two batch sizes and two lengths (one odd) through the same file.
    for which in ("batch", "single"):
        out = session.run(None, {"waveform": expected[f"wave_{which}"]})[0]
        assert relative_error(out, expected[f"embedding_{which}"]) <= TOLERANCE, (name, which)


@pytest.mark.slow
def test_onnx_attentive_pooling_keeps_the_statistics_out_of_the_frames(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = redimnet.build("b0").eval()  # ASTP with global context: hidden([frames, mean, std])
    channels = model.pool.score.out_channels
    path = export_onnx(model, tmp_path / "b0.onnx")
    graph = onnx.load(str(path)).graph
    weights = {tensor.name: tuple(tensor.dims) for tensor in graph.initializer}
    convs = [node for node in graph.node if node.name.startswith("/pool/") and node.op_type == "Conv"]
    # constant weights (so int8 export quantises them per channel), the frames' part and the statistics'
    # part apart: no product over the [frames, mean, std] concatenation at every frame
    assert all(node.input[1] in weights for node in convs)
    assert sorted(weights[node.input[1]][1] for node in convs) == sorted([channels, 2 * channels, 128])
    wave = torch.randn(2, 30000, generator=torch.Generator().manual_seed(1)) * 0.1
    with torch.no_grad():
        expected = model(wave).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert relative_error(session.run(None, {"waveform": wave.numpy()})[0], expected) <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_torchscript_matches_fixture(name, tmp_path):
    model, expected = load(name)
    path = export_torchscript(model, tmp_path / f"{name}.ts")
    scripted = torch.jit.load(str(path))
    with torch.no_grad():
        for which in ("batch", "single"):
            out = scripted(torch.from_numpy(expected[f"wave_{which}"])).numpy()
            assert relative_error(out, expected[f"embedding_{which}"]) <= TOLERANCE, (name, which)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_features_in_export(fmt, tmp_path):
    model, expected = load("b0")
    path = export_model(model, tmp_path / f"b0.{fmt}", fmt, features_in=True)
    for which in ("batch", "single"):
        features = expected[f"features_{which}"]
        if fmt == "onnx":
            ort = pytest.importorskip("onnxruntime")
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            assert [i.name for i in session.get_inputs()] == ["features"]
            out = session.run(None, {"features": features})[0]
        else:
            with torch.no_grad():
                out = torch.jit.load(str(path))(torch.from_numpy(features)).numpy()
        assert relative_error(out, expected[f"embedding_{which}"]) <= TOLERANCE, which


@pytest.mark.parametrize("samples", [400, 4799, 16000, 52817])
def test_dft_front_end_equals_stft_front_end(samples):
    model = redimnet.build("b0").eval()
    wave = torch.randn(2, samples, generator=torch.Generator().manual_seed(samples)) * 0.3
    with torch.no_grad():
        expected = model.features(wave)
        ours = DFTMelFrontEnd(model.frontend)(wave)
    assert ours.shape == expected.shape
    assert relative_error(ours.numpy(), expected.numpy()) <= TOLERANCE


def run_cli(argv):
    parser = argparse.ArgumentParser()
    export_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.mark.slow
def test_cli_exports_checkpoint(tmp_path, capsys):
    out = tmp_path / "model.ts"
    assert (
        run_cli(["export", "--format", "torchscript", "--checkpoint", str(official_file("b0.pt")), "-o", str(out)]) == 0
    )
    assert out.is_file() and "wrote" in capsys.readouterr().out
    model, expected = load("b0")
    with torch.no_grad():
        out = torch.jit.load(str(out))(torch.from_numpy(expected["wave_single"])).numpy()
    assert relative_error(out, expected["embedding_single"]) <= TOLERANCE


def test_cli_bad_output_path(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        run_cli(
            [
                "export",
                "--format",
                "torchscript",
                "--checkpoint",
                str(official_file("b0.pt")),
                "-o",
                str(tmp_path / "missing" / "model.ts"),
            ]
        )
    with pytest.raises(ExportError, match="is a directory"):
        export_model(redimnet.build("b0").eval(), tmp_path, "torchscript")
    with pytest.raises(ExportError, match="unknown export format"):
        export_model(redimnet.build("b0").eval(), tmp_path / "x", "tflite")
