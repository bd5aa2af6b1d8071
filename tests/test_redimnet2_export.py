"""ONNX and TorchScript exports of ReDimNet2 reproduce the official embeddings on every fixture."""

import numpy as np
import pytest
import torch
from test_redimnet2_parity import FIXTURE_NAMES, REDIMNET2, TOLERANCE

import redimnet
from redimnet.embedding.export import export_onnx, export_torchscript


def relative_error(ours, expected) -> float:
    ours, expected = np.asarray(ours), np.asarray(expected)
    assert ours.shape == expected.shape, f"shape {ours.shape} != expected {expected.shape}"
    return float(np.abs(ours - expected).max() / np.abs(expected).max())


def load(name):
    return redimnet.load_checkpoint(REDIMNET2 / f"{name}.pt"), dict(np.load(REDIMNET2 / f"{name}.npz"))


@pytest.mark.slow
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_onnx_matches_fixture(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model, expected = load(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for which in ("batch", "single"):  # two batch sizes and two lengths through one file
        out = session.run(None, {"waveform": expected[f"wave_{which}"]})[0]
        assert relative_error(out, expected[f"embedding_{which}"]) <= TOLERANCE, (name, which)


@pytest.mark.slow
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_torchscript_matches_fixture(name, tmp_path):
    model, expected = load(name)
    scripted = torch.jit.load(str(export_torchscript(model, tmp_path / f"{name}.ts")))
    with torch.no_grad():
        for which in ("batch", "single"):
            out = scripted(torch.from_numpy(expected[f"wave_{which}"])).numpy()
            assert relative_error(out, expected[f"embedding_{which}"]) <= TOLERANCE, (name, which)


@pytest.mark.slow
def test_onnx_writes_the_time_upsampling_as_one_resize(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = redimnet.build("redimnet2-b0").eval()  # stages 2-5 pool time by 2 and 4, then upsample
    path = export_onnx(model, tmp_path / "b0.onnx")
    nodes = onnx.load(str(path)).graph.node
    backbone = [node.op_type for node in nodes if node.name.startswith("/backbone/")]
    assert backbone.count("Resize") == 4 and "Expand" not in backbone
    wave = torch.randn(2, 30000, generator=torch.Generator().manual_seed(1)) * 0.1
    with torch.no_grad():
        expected = model(wave).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert relative_error(session.run(None, {"waveform": wave.numpy()})[0], expected) <= TOLERANCE
