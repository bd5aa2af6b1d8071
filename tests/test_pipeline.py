"""The one embedding pipeline: streamed = whole-file results, bounded reading, silence refused, one cosine."""

import json

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from redimnet import cli
from redimnet.audio import read as audio_module
from redimnet.audio.read import SILENCE_FLOOR_DBFS, AudioError, AudioFile, check_signal_level
from redimnet.embedding import pipeline
from redimnet.embedding.embedder import Embedder
from redimnet.embedding.io import load_embeddings
from redimnet.embedding.pipeline import EmbeddingPipeline, Windowing, windows_of
from redimnet.embedding.similarity import ScoringError, cosine_score, l2_normalize

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def model(b0_model_and_checkpoint):
    return b0_model_and_checkpoint[0]


@pytest.fixture(scope="module")
def checkpoint(b0_model_and_checkpoint):
    return b0_model_and_checkpoint[1]


def noise(samples: int, seed: int = 0, level: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(samples) * level).astype(np.float32)


def direct(model, wave: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(wave))[None]).numpy()[0]


def whole_file_embedding(model, path, max_samples, overlap_samples):
    """The pre-streaming algorithm: decode all, resample all, cut evenly spread windows, average."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    wave = data.mean(axis=1).astype(np.float32)
    if rate != 16000:
        wave = soxr.resample(wave, rate, 16000, quality="HQ").astype(np.float32)
    if len(wave) <= max_samples:
        return direct(model, wave)
    hop = max_samples - overlap_samples
    count = int(np.ceil((len(wave) - max_samples) / hop)) + 1
    starts = [int(round(s)) for s in np.linspace(0, len(wave) - max_samples, count)]
    return np.mean([direct(model, wave[s : s + max_samples]) for s in starts], axis=0)


def close(a, b, tol=1e-4):
    a, b = np.asarray(a), np.asarray(b)
    assert np.max(np.abs(a - b)) <= tol * max(np.max(np.abs(b)), 1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("rate,channels", [(8000, 1), (16000, 2), (44100, 1)])
def test_streamed_file_equals_whole_file_embedding(tmp_path, model, monkeypatch, rate, channels):
    monkeypatch.setattr(audio_module, "BLOCK_FRAMES", 777)  # many blocks, none aligned with the windows
    path = tmp_path / "long.wav"
    sf.write(
        path, np.random.default_rng(rate).standard_normal((int(3.3 * rate), channels)) * 0.1, rate, subtype="PCM_16"
    )
    embedder = Embedder(model, optimize=False, max_seconds=1.0, overlap_seconds=0.25, batch_size=2)
    assert len(embedder.windows(AudioFile(path).length)) == 5
    expected = whole_file_embedding(model, path, 16000, 4000)
    close(embedder.embed_file(path), expected)
    close(embedder.embed_files([path], workers=1)[0], expected)  # same in a decoding worker
    short = tmp_path / "short.wav"
    sf.write(short, np.random.default_rng(1).standard_normal(int(0.7 * rate)) * 0.1, rate, subtype="PCM_16")
    close(embedder.embed_file(short), whole_file_embedding(model, short, 16000, 4000))


def test_block_reads_equal_whole_reads(tmp_path, monkeypatch):
    path = tmp_path / "a.flac"
    sf.write(path, np.random.default_rng(3).standard_normal((22050 * 2, 2)) * 0.1, 22050, subtype="PCM_16")
    whole = audio_module.read_audio(path)
    monkeypatch.setattr(audio_module, "BLOCK_FRAMES", 1000)
    streamed = AudioFile(path)
    assert np.array_equal(np.concatenate(list(streamed.blocks())), whole)
    assert streamed.samples_read == streamed.length == len(whole)
    trimmed_wave = np.concatenate([np.zeros(8000), noise(16000, 4), np.zeros(12000)])
    sf.write(tmp_path / "t.wav", trimmed_wave, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(
        AudioFile(tmp_path / "t.wav", trim=True).read(), audio_module.trim_silence(trimmed_wave.astype(np.float32))
    )


def test_the_reader_never_asks_for_more_than_a_block(tmp_path, monkeypatch):
    """Bounded memory, structurally: every decode request is one block, and windows are cut as blocks arrive."""
    path = tmp_path / "long.wav"
    sf.write(path, noise(8000 * 20, 5), 8000, subtype="PCM_16")
    requests = []
    original = sf.SoundFile.read

    def counting_read(self, frames=-1, *args, **kwargs):
        requests.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    monkeypatch.setattr(sf, "read", lambda *a, **k: pytest.fail("the whole file was read at once"))
    source = AudioFile(path, block_frames=4000)
    blocks = list(source.blocks())
    assert requests and all(0 < frames <= 4000 for frames in requests)
    assert max(len(b) for b in blocks) <= 2 * 4000 + 1024  # one block at 16 kHz (+ the filter delay), not the file

    pulled = []

    def source_blocks():
        for block in blocks:
            pulled.append(len(block))
            yield block

    windowing = Windowing(max_samples=32000, overlap_samples=8000)
    total = sum(len(b) for b in blocks)
    for number, window in enumerate(windows_of(source_blocks(), total, windowing)):
        start = windowing.starts(total)[number]
        # a window is handed over as soon as its last sample has arrived, never later
        assert sum(pulled) - max(len(b) for b in blocks) < start + 32000 <= sum(pulled)
        assert len(window) == 32000


def test_batches_stay_within_the_sample_budget(model, monkeypatch):
    sizes = []

    class Recording(torch.nn.Module):
        def forward(self, batch):
            sizes.append(tuple(batch.shape))
            return batch[:, :8] * 0 + batch.std(dim=1, keepdim=True)

    monkeypatch.setattr(pipeline, "BATCH_SAMPLES", 40000)
    runner = EmbeddingPipeline(Recording(), "cpu", Windowing(16000, 4000), min_samples=100, batch_size=16)
    waves = [noise(50000, 7), noise(16000, 8), noise(16000, 9), noise(3000, 10), noise(16000, 11)]
    results = sorted(runner.run(waves), key=lambda r: r.index)
    assert [r.error for r in results] == [None] * 5
    assert all(n * t <= 40000 for n, t in sizes)  # 16 000-sample windows: two at a time
    assert (2, 16000) in sizes  # equal lengths are batched


def test_a_model_failure_on_a_full_batch_is_that_input_s_error():
    class FailsOnOneLength(torch.nn.Module):
        def forward(self, batch):
            if batch.shape[1] == 3000:
                raise RuntimeError("no kernel for this length\nsecond line")
            return batch[:, :8] * 0 + batch.std(dim=1, keepdim=True)

    runner = EmbeddingPipeline(FailsOnOneLength(), "cpu", Windowing(16000, 4000), min_samples=100, batch_size=1)
    waves = [noise(2000, 1), noise(3000, 2), noise(4000, 3), noise(40000, 4)]
    for workers in (0, 1):  # batch size 1: each window runs the moment it arrives, before its input's end
        results = sorted(runner.run(waves, workers=workers), key=lambda r: r.index)
        assert [r.index for r in results] == [0, 1, 2, 3]
        assert results[1].error == "the model failed: no kernel for this length" and results[1].embedding is None
        assert all(r.error is None and r.embedding.shape == (8,) for r in results[:1] + results[2:])


def test_decoding_workers_batch_equal_lengths_as_the_calling_process_does(tmp_path):
    """Workers hand over runs of short inputs, dealt to them in turn: inputs still arrive in order of
    length, so equal lengths share batches exactly as without workers."""
    shapes = []

    class Recording(torch.nn.Module):
        def forward(self, batch):
            shapes.append(tuple(batch.shape))
            return batch[:, :8] * 0 + batch.std(dim=1, keepdim=True)

    paths = []
    for number in range(40):
        samples = [8000, 8000, 8000, 12000, 12000, 16000][number % 6] if number < 36 else 50000
        paths.append(tmp_path / f"f{number}.wav")
        sf.write(paths[-1], noise(samples, number), 16000, subtype="PCM_16")
    runner = EmbeddingPipeline(Recording(), "cpu", Windowing(16000, 4000), min_samples=100, batch_size=16)
    batches = {}
    for workers in (0, 1, 2):
        shapes.clear()
        results = list(runner.run(paths, workers=workers))
        assert sorted(r.index for r in results) == list(range(40)) and all(r.error is None for r in results)
        batches[workers] = sorted(shapes)
    assert batches[0] == [(2, 8000), (6, 16000), (12, 12000), (16, 8000), (16, 16000)]  # 4 long files: 16 windows
    assert batches[1] == batches[2] == batches[0]


def test_hand_overs_are_runs_of_bounded_audio():
    from redimnet.embedding.pipeline import _chunks, _lists

    lengths = [-1] + sorted(np.random.default_rng(0).integers(3 * 16000, 8 * 16000, 199).tolist())
    limit = 32 * 16000
    chunks = _chunks(range(200), lengths, limit)
    assert [i for chunk in chunks for i in chunk] == list(range(200))  # every input once, in order
    assert len(chunks[0]) == 1 and len(chunks) < 60  # the first alone, then several per run
    assert all(sum(max(lengths[i], 0) for i in chunk) <= limit for chunk in chunks)
    assert _chunks([0, 1, 2], [40 * 16000, 50 * 16000, 10], limit) == [[0], [1], [2]]  # longer than a run: alone
    # a list holds at most the limit plus one window: a long input's windows go one by one
    window = np.zeros(20, np.float32)
    records = [(0, "window", window)] * 5 + [(0, "end", (5, 90)), (1, "whole", (window[:5], 5)), (2, "error", "bad")]
    assert [len(part) for part in _lists(records, 30)] == [2, 2, 4]
    assert [len(part) for part in _lists(records, 10)] == [1, 1, 1, 1, 1, 3]


def test_a_header_with_the_wrong_length_still_gives_the_true_embedding(tmp_path, model, monkeypatch):
    path = tmp_path / "long.wav"
    sf.write(path, noise(16000 * 3, 12), 16000, subtype="FLOAT")
    embedder = Embedder(model, optimize=False, max_seconds=1.0, overlap_seconds=0.25)
    expected = embedder.embed_file(path)
    for wrong in (-9000, +9000):  # the header claims fewer / more samples than the file holds
        monkeypatch.setattr(AudioFile, "_resampled_length", lambda self, frames, d=wrong: frames + d)
        close(embedder.embed_file(path), expected, tol=1e-5)


@pytest.mark.slow
def test_workers_give_bit_identical_results_and_per_file_errors(tmp_path, model, monkeypatch):
    """Short inputs travel from a worker as one record (window and length together), long ones window by
    window: either way the results equal the in-process ones bit for bit, and a bad file fails alone."""
    files = {}
    for name, rate, seconds in [("a.wav", 16000, 0.5), ("b.wav", 8000, 0.7), ("c.flac", 44100, 0.6)]:
        files[name] = tmp_path / name
        sf.write(files[name], noise(int(rate * seconds), len(files)), rate, subtype="PCM_16")
    files["long.wav"] = tmp_path / "long.wav"
    sf.write(files["long.wav"], noise(16000 * 3, 30), 16000, subtype="PCM_16")  # three 1 s windows
    files["silent.wav"] = tmp_path / "silent.wav"
    sf.write(files["silent.wav"], np.zeros(8000), 16000, subtype="PCM_16")
    files["short.wav"] = tmp_path / "short.wav"
    sf.write(files["short.wav"], noise(100, 31), 16000, subtype="PCM_16")
    files["text.wav"] = tmp_path / "text.wav"
    files["text.wav"].write_text("not audio\n" * 20)
    paths = list(files.values())
    embedder = Embedder(model, optimize=False, max_seconds=1.0, overlap_seconds=0.25, batch_size=2)

    def outcomes(workers):
        return {paths[r.index].name: (r.embedding, r.error) for r in embedder.run(paths, workers=workers)}

    inline, workers = outcomes(0), outcomes(1)
    assert sorted(inline) == sorted(workers) == sorted(files)
    for name in files:
        (a, error_a), (b, error_b) = inline[name], workers[name]
        assert error_a == error_b
        assert (a is None and b is None) or np.array_equal(a, b), name
    for name in ["a.wav", "b.wav", "c.flac"]:  # one window: exactly the model on the decoded file
        assert np.array_equal(workers[name][0], direct(model, audio_module.read_audio(files[name]))), name
    assert "no speech signal" in workers["silent.wav"][1]
    assert "too short" in workers["short.wav"][1]
    assert "not a readable audio file" in workers["text.wav"][1]
    # a header claiming one window for a file of three (and three for one of one window): read again, same result
    expected = {name: inline[name][0] for name in ["long.wav", "a.wav"]}
    for wrong in (-36000, +36000):
        monkeypatch.setattr(AudioFile, "_resampled_length", lambda self, frames, d=wrong: max(frames + d, 8000))
        for name in expected:
            for count in (0, 1):
                close(embedder.embed_files([files[name]], workers=count)[0], expected[name], tol=1e-5)


# --- silence ---------------------------------------------------------------------------------------
def test_silence_is_refused_by_the_embedder(tmp_path, model):
    embedder = Embedder(model, optimize=False, max_seconds=1.0, overlap_seconds=0.25)
    with pytest.raises(AudioError, match="no speech signal.*all samples are zero"):
        embedder.embed(np.zeros(16000, np.float32))
    below = 10 ** ((SILENCE_FLOOR_DBFS - 6) / 20)  # RMS 6 dB under the floor
    with pytest.raises(AudioError, match="no speech signal.*dBFS"):
        embedder.embed(noise(16000, 13, level=below))
    assert embedder.embed(noise(16000, 13, level=below * 4)).shape == (192,)  # 6 dB above: accepted
    sf.write(tmp_path / "zero.wav", np.zeros(8000 * 3), 8000, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"zero\.wav: no speech signal"):
        embedder.embed_file(tmp_path / "zero.wav")  # long: windowed, still refused
    sf.write(tmp_path / "ok.wav", noise(8000, 14), 8000, subtype="PCM_16")
    results = sorted(embedder.run([tmp_path / "zero.wav", tmp_path / "ok.wav"]), key=lambda r: r.index)
    assert "no speech signal" in results[0].error and results[0].embedding is None
    assert results[1].error is None and results[1].embedding.shape == (192,)
    with pytest.raises(AudioError, match="no speech signal"):
        check_signal_level(np.zeros(10, np.float32))


@pytest.mark.slow
def test_silence_is_a_per_file_failure_in_embed_and_an_error_in_verify(tmp_path, checkpoint, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "silent.wav", np.zeros(16000), 16000, subtype="PCM_16")
    sf.write(folder / "speech.wav", noise(16000, 15), 16000, subtype="PCM_16")
    out = tmp_path / "e.npz"
    assert (
        cli.main(
            [
                "embed",
                str(folder),
                "-o",
                str(out),
                "--checkpoint",
                str(checkpoint),
                "--no-progress",
                "--decode-workers",
                "0",
            ]
        )
        == 1
    )
    ids, _ = load_embeddings(out)
    assert list(ids) == ["speech.wav"]
    assert "no speech signal" in (tmp_path / "e.failed.tsv").read_text()
    sf.write(tmp_path / "silent2.wav", np.zeros(16000), 16000, subtype="PCM_16")
    capsys.readouterr()
    status = cli.main(
        [
            "verify",
            str(folder / "silent.wav"),
            str(tmp_path / "silent2.wav"),
            "--checkpoint",
            str(checkpoint),
            "--threshold",
            "0.5",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert status == 2 and "no speech signal" in captured.err and "accept" not in captured.out
    assert (
        cli.main(
            [
                "verify",
                str(folder / "speech.wav"),
                str(folder / "speech.wav"),
                "--checkpoint",
                str(checkpoint),
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(1.0, abs=1e-5)


# --- one cosine ------------------------------------------------------------------------------------
def test_one_cosine_and_one_zero_vector_policy(tmp_path):
    from redimnet.embedding import embedder as inference
    from redimnet.evaluation import scoring
    from redimnet.speakers import sqlite as speaker_db

    assert scoring.l2_normalize is l2_normalize and inference.cosine_score is cosine_score
    assert cosine_score([3, 4], [6, 8]) == pytest.approx(1.0) and cosine_score([1, 0], [0, 2]) == 0.0
    assert cosine_score(torch.tensor([1.0, 1.0]), np.array([1.0, -1.0])) == pytest.approx(0.0, abs=1e-12)
    for bad in ([0.0, 0.0], [np.nan, 1.0], [np.inf, 1.0]):
        with pytest.raises(ScoringError, match="zero or non-finite embedding has no direction"):
            cosine_score(bad, [1.0, 1.0])
        with pytest.raises(ScoringError):
            l2_normalize(np.array([[1.0, 2.0], bad]))
    with pytest.raises(ScoringError, match="different sizes"):
        cosine_score([1, 2], [1, 2, 3])
    np.testing.assert_allclose(l2_normalize(np.array([[3.0, 4.0]])), [[0.6, 0.8]], rtol=1e-7)
    assert issubclass(ScoringError, ValueError)
    with speaker_db.SpeakerDatabase(tmp_path / "s.db") as db:
        with pytest.raises(speaker_db.SpeakerDatabaseError, match="zero or non-finite"):
            db.enroll("ann", np.zeros((1, 4)), ["a"], "m")


def test_training_validation_uses_the_pipeline(tmp_path, model):
    from redimnet.evaluation.metrics import eer
    from redimnet.training.validation import validation_eer

    waves = {f"s{i}/u{j}.wav": noise(8000 + 1000 * j, 20 + 3 * i + j) for i in range(2) for j in range(2)}
    for name, wave in waves.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        sf.write(tmp_path / name, wave, 16000, subtype="FLOAT")
    trials = [
        ("s0/u0.wav", "s0/u1.wav", 1),
        ("s0/u0.wav", "s1/u0.wav", 0),
        ("s1/u0.wav", "s1/u1.wav", 1),
        ("s0/u1.wav", "s1/u1.wav", 0),
    ]
    (tmp_path / "trials.txt").write_text("".join(f"{label} {a} {b}\n" for a, b, label in trials))
    model.train()
    value = validation_eer(model, str(tmp_path / "trials.txt"), str(tmp_path), 16000, 20.0, torch.device("cpu"))
    assert model.training  # mode restored
    model.eval()
    vectors = {name: direct(model, wave) for name, wave in waves.items()}
    expected = eer([cosine_score(vectors[a], vectors[b]) for a, b, _ in trials], [bool(t[2]) for t in trials])
    assert value == pytest.approx(expected, abs=1e-9)
    sf.write(tmp_path / "s1" / "u1.wav", np.zeros(9000), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"1 of 4 utterance.*u1\.wav: no speech signal"):
        validation_eer(model, str(tmp_path / "trials.txt"), str(tmp_path), 16000, 20.0, torch.device("cpu"))


@pytest.mark.slow
def test_loading_a_checkpoint_does_not_import_the_compiler(checkpoint):
    """Start-up cost is part of every command's throughput: the checkpoint's layout check (a model built on
    the meta device) must not pull in torch._dynamo (about 2 s of CPU) through the front end's constants."""
    import subprocess
    import sys

    from conftest import PROJECT_ROOT

    code = "import sys, redimnet; redimnet.load_checkpoint(sys.argv[1]); print('torch._dynamo' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code, str(checkpoint)], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
