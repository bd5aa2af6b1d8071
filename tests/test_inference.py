"""The Embedder: agreement with the model, resampling, batching, long inputs, shortest input, errors."""

import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import official_file

import redimnet
from redimnet.audio.read import AudioError, resample
from redimnet.embedding.embedder import Embedder, cosine_score, embed_directory, minimum_samples
from redimnet.errors import InvalidArgumentError

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def model():
    return redimnet.load_checkpoint(official_file("b0.pt"))


@pytest.fixture(scope="module")
def embedder(model):
    return Embedder(model, device="cpu", optimize=False)


def noise(samples: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(samples) * 0.1).astype(np.float32)


def direct(model, wave: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(wave)[None]).numpy()[0]


def close(a, b, tol=1e-4):
    a, b = np.asarray(a), np.asarray(b)
    assert np.max(np.abs(a - b)) <= tol * max(np.max(np.abs(b)), 1e-6)


def test_embed_matches_the_model_and_the_reference_output(model, embedder):
    data = np.load(official_file("b0.npz"))
    close(embedder.embed(data["wave_single"][0], 16000), data["embedding_single"][0])
    wave = noise(16000, 1)
    out = embedder.embed(wave)
    assert out.shape == (192,) and out.dtype == np.float32
    close(out, direct(model, wave))


def test_optimized_embedder_agrees_with_plain(model, embedder):
    fast = Embedder(model, device="cpu", optimize=True)
    wave = noise(24000, 2)
    close(fast.embed(wave), embedder.embed(wave), tol=1e-3)


def test_falls_back_to_the_plain_model_without_the_optimize_module(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "redimnet.fast.optimize", None)  # import fails
    fallback = Embedder(model, device="cpu")
    assert fallback.network is fallback.model and not fallback.optimized
    close(fallback.embed(noise(8000, 3)), direct(model, noise(8000, 3)))


def test_other_rates_and_channels_are_resampled_and_mixed(model, embedder):
    rate = 44100
    stereo = np.stack([noise(rate, 4), noise(rate, 5)])
    expected = direct(model, resample(stereo.mean(axis=0), rate))
    close(embedder.embed(stereo, rate), expected)
    left = Embedder(model, optimize=False, channel=0)
    close(left.embed(stereo, rate), direct(model, resample(stereo[0], rate)))


@pytest.mark.slow
def test_embed_file_and_batches_of_equal_and_unequal_lengths(tmp_path, model, embedder):
    paths, waves = [], []
    for i, length in enumerate([16000, 12000, 16000, 16000, 9000]):
        wave = noise(length, 10 + i)
        path = tmp_path / f"u{i}.wav"
        sf.write(path, wave, 16000, subtype="FLOAT")
        paths.append(path)
        waves.append(wave)
    batched = Embedder(model, optimize=False, batch_size=2).embed_files(paths)
    assert batched.shape == (5, 192)
    for path, wave, row in zip(paths, waves, batched):
        close(row, direct(model, wave))
        close(embedder.embed_file(path), row)


def test_windows_cover_long_inputs_evenly(model):
    small = Embedder(model, optimize=False, max_seconds=1.0, overlap_seconds=0.25)
    assert small.windows(16000) == [0]
    for length in [16001, 30000, 40000, 123457]:
        starts = small.windows(length)
        assert starts[0] == 0 and starts[-1] + 16000 == length
        gaps = np.diff(starts)
        assert np.all(gaps <= 16000 - 4000 + 1) and np.all(gaps > 0)  # overlap of at least 0.25 s


def test_long_inputs_are_the_mean_of_window_embeddings(model):
    small = Embedder(model, optimize=False, max_seconds=1.0, overlap_seconds=0.25, batch_size=2)
    wave = noise(40000, 6)
    starts = small.windows(len(wave))
    assert len(starts) == 3
    expected = np.mean([direct(model, wave[s : s + 16000]) for s in starts], axis=0)
    close(small.embed(wave), expected)
    close(small.embed(wave[:16000]), direct(model, wave[:16000]))  # not windowed


def test_shortest_input(model, embedder):
    assert embedder.min_samples == minimum_samples(model) == model.frontend.n_fft // 2 + 1 == 257
    assert embedder.embed(noise(257)).shape == (192,)
    with pytest.raises(AudioError, match="too short: 256 samples.*at least 257"):
        embedder.embed(noise(256))
    with pytest.raises(AudioError, match="too short"):
        embedder.embed(noise(128), 8000)  # 256 samples once resampled to 16 kHz
    with pytest.raises(RuntimeError):  # the network itself cannot take fewer: the limit is real
        with torch.no_grad():
            model(torch.zeros(1, 256))


def test_shortest_input_of_the_tf_front_end():
    model = redimnet.load_checkpoint(official_file("var_tfmel_cls.pt"))
    assert minimum_samples(model) == 400


@pytest.mark.parametrize(
    "bad", [np.zeros(0, np.float32), np.full(1000, np.nan, np.float32), np.full(1000, 1e38, np.float32)]
)
def test_bad_waveforms(embedder, bad):
    with pytest.raises(AudioError):
        embedder.embed(bad, 16000)


def test_score_is_cosine(embedder):
    a, b = noise(8000, 7), noise(8000, 8)
    ea, eb = embedder.embed(a), embedder.embed(b)
    assert embedder.score(ea, ea) == pytest.approx(1.0)
    assert embedder.score(ea, eb) == pytest.approx(float(ea @ eb / np.linalg.norm(ea) / np.linalg.norm(eb)))
    assert embedder.score(a, b) == pytest.approx(embedder.score(ea, eb), abs=1e-6)
    assert cosine_score([1, 0], [0, 2]) == 0.0
    with pytest.raises(ValueError):
        cosine_score([0, 0], [1, 1])


def test_options_are_checked(model):
    with pytest.raises(InvalidArgumentError, match="float16"):
        Embedder(model, device="cpu", precision="float16")
    with pytest.raises(InvalidArgumentError, match="precision"):
        Embedder(model, precision="int4")
    with pytest.raises(InvalidArgumentError, match="max_seconds"):
        Embedder(model, max_seconds=1.0, overlap_seconds=1.0)
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgumentError, match="CUDA"):
            Embedder(model, device="cuda")


def test_bfloat16_autocast_on_cpu_stays_close(model, embedder):
    wave = noise(16000, 9)
    low = Embedder(model, device="cpu", precision="bfloat16", optimize=False).embed(wave)
    assert cosine_score(low, embedder.embed(wave)) > 0.98


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16"])
def test_gpu_autocast(model, embedder, precision):
    wave = noise(32000, 10)
    gpu = Embedder(redimnet.load_checkpoint(official_file("b0.pt")), device="cuda", precision=precision)
    assert cosine_score(gpu.embed(wave), embedder.embed(wave)) > (0.9999 if precision == "float32" else 0.98)


def test_embed_directory_uses_and_updates_the_cache(tmp_path, model):
    root = tmp_path / "audio"
    (root / "s").mkdir(parents=True)
    for i in range(2):
        sf.write(root / "s" / f"{i}.wav", noise(8000, 20 + i), 16000, subtype="FLOAT")
    cache = tmp_path / "cache.npz"
    ids, matrix = embed_directory(model, root, ["s/0.wav", "s/1.wav"], cache, progress=False, optimize=False)
    assert list(ids) == ["s/0.wav", "s/1.wav"] and cache.exists()
    close(matrix[1], direct(model, noise(8000, 21)))
    (root / "s" / "0.wav").unlink()  # served from the cache now
    ids2, matrix2 = embed_directory(model, root, ["s/0.wav"], cache, progress=False)
    np.testing.assert_array_equal(matrix2[0], matrix[0])
    with pytest.raises(AudioError, match="1 of 1 file"):
        embed_directory(model, root, ["s/absent.wav"], cache, progress=False)
