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
