"""The CUDA paths: parity of both families on a GPU, the optimised model there, the embedding
pipeline and diarization with a GPU embedder, and mixed-precision training steps.

Every test here is skipped on a machine without CUDA (CI has none); run them on a GPU machine
with ``python -m pytest -q tests/test_gpu.py``.  On the GPU, float32 convolutions and matrix
products may use TF32 (PyTorch's default for cuDNN convolutions), so the tolerances below are
those of TF32 arithmetic, not of the CPU's bit-for-bit parity tests.
"""

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import TINY_MODEL, fixture_file, official_file

import redimnet
from redimnet.embedding.embedder import Embedder
from redimnet.embedding.similarity import cosine_score
from redimnet.fast.optimize import optimize_for_inference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# max|gpu - reference| <= TOLERANCE * max|reference| in float32 (TF32 allowed)
TOLERANCE = 5e-3


def relative_error(ours: torch.Tensor, expected: np.ndarray) -> float:
    assert tuple(ours.shape) == expected.shape
    return float(np.abs(ours.detach().float().cpu().numpy() - expected).max() / np.abs(expected).max())


def _noise(seconds: float, seed: int, rate: int = 16000) -> np.ndarray:
    generator = np.random.default_rng(seed)
    return (generator.standard_normal(int(seconds * rate)) * 0.1).astype(np.float32)


@pytest.mark.parametrize("family, name", [("official", "b0"), ("redimnet2", "b0")])
@pytest.mark.parametrize("optimized", [False, True], ids=["plain", "optimized"])
def test_released_outputs_on_the_gpu(family, name, optimized):
    model = redimnet.load_checkpoint(fixture_file(family, f"{name}.pt")).to("cuda")
    expected = dict(np.load(fixture_file(family, f"{name}.npz")))
    if optimized:
        model = optimize_for_inference(model, strict=True)
    for which in ("batch", "single"):
        wave = torch.from_numpy(expected[f"wave_{which}"]).to("cuda")
        with torch.inference_mode():
            embedding = model(wave)
        assert embedding.device.type == "cuda"
        error = relative_error(embedding, expected[f"embedding_{which}"])
        assert error <= TOLERANCE, f"{family}/{name} {which}: relative error {error:.2e}"


@pytest.mark.parametrize("precision, floor", [("float32", 0.9999), ("float16", 0.99), ("bfloat16", 0.98)])
def test_embedding_pipeline_on_the_gpu_matches_the_cpu(tmp_path, precision, floor):
    """Files of several lengths and rates through the whole pipeline (decode, resample, windows,
    batches) on the GPU give the CPU's embeddings."""
    paths = []
    for i, (seconds, rate) in enumerate([(2.5, 16000), (4.0, 8000), (75.0, 44100)]):
        path = tmp_path / f"{i}.wav"
        sf.write(path, _noise(seconds, i, rate), rate, subtype="FLOAT")
        paths.append(path)
    model = redimnet.load_checkpoint(official_file("b0.pt"))
    cpu = Embedder(model, device="cpu").embed_files(paths)
    gpu = Embedder(model, device="cuda", precision=precision).embed_files(paths)
    assert len(cpu) == len(gpu) == len(paths)
    for a, b in zip(cpu, gpu):
        assert cosine_score(np.asarray(a), np.asarray(b)) > floor


def test_diarization_with_a_gpu_embedder_agrees_with_the_cpu(tmp_path):
    from redimnet.diarization import Diarizer, diarization_error
    from redimnet.testing.synth import generate_conversation

    audio = tmp_path / "talk.wav"
    generate_conversation(audio, speakers=3, seconds=60, seed=3)
    model = redimnet.load_checkpoint(official_file("b0.pt"))
    on_cpu = Diarizer(Embedder(model, device="cpu"), vad="energy").diarize(audio, num_speakers=3)
    on_gpu = Diarizer(Embedder(model, device="cuda"), vad="energy").diarize(audio, num_speakers=3)
    assert on_gpu, "no segments from the GPU embedder"
    # the same recording and clustering: the two hypotheses differ at most in a few windows
    disagreement = diarization_error(on_cpu, on_gpu, collar=0.0).der
    assert disagreement < 0.05, f"CPU and GPU hypotheses differ on {disagreement:.1%} of the speech"


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_steps_on_the_gpu(tmp_path, precision):
    from redimnet.cli import main as cli_main
    from redimnet.testing.synth import generate_corpus
    from redimnet.training import load_config, train

    generate_corpus(tmp_path / "audio", speakers=range(4), utterances=3, seconds=0.6)
    assert cli_main(["prepare", str(tmp_path / "audio"), "-o", str(tmp_path / "lists")]) == 0
    out = tmp_path / "run"
    options = {
        "model": {"preset": "b0", "overrides": TINY_MODEL},
        "data": {"csv": str(tmp_path / "lists" / "list.csv"), "crop_seconds": 0.5, "batch_size": 4, "num_workers": 1},
        "optimizer": {"lr": 0.05, "final_lr": 0.001, "warmup_epochs": 0.5},
        "train": {
            "output_dir": str(out),
            "epochs": 1,
            "steps_per_epoch": 6,
            "checkpoint_every": 6,
            "progress": False,
            "device": "cuda",
            "precision": precision,
        },
    }
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(options))
    result = train(load_config(config), log=lambda _: None)
    assert result.steps == 6 and np.isfinite(result.last_loss)
    assert result.final_model is not None and result.final_model.is_file()
    model = redimnet.load_checkpoint(result.final_model)  # loads on the CPU
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert next(model.parameters()).device.type == "cpu"
