"""Audio reading: formats, sample rates, channels, integer PCM, silence trimming, bad files."""

import os

import numpy as np
import pytest
import soundfile as sf

from redimnet.audio.read import (
    AudioError,
    iter_inputs,
    list_audio_files,
    prepare_waveform,
    read_audio,
    read_scp,
    resample,
    trim_silence,
)


def tone(frequency: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def dominant_frequency(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[np.argmax(spectrum)])


FORMATS = [  # (extension, format, subtype, tolerance of the waveform comparison)
    ("wav", "WAV", "PCM_16", 1e-3),
    ("wav", "WAV", "PCM_24", 1e-4),
    ("wav", "WAV", "FLOAT", 1e-4),
    ("flac", "FLAC", "PCM_16", 1e-3),
    ("ogg", "OGG", "VORBIS", None),
]


@pytest.mark.parametrize("extension,container,subtype,tolerance", FORMATS)
@pytest.mark.parametrize("rate", [8000, 16000, 22050, 48000])
def test_formats_and_rates_decode_to_16k_mono(tmp_path, extension, container, subtype, tolerance, rate):
    source = tone(440.0, 0.5, rate)
    path = tmp_path / f"tone.{extension}"
    sf.write(path, source, rate, format=container, subtype=subtype)
    wave = read_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 8000) <= 1
    assert abs(dominant_frequency(wave, 16000) - 440.0) < 5.0
    if tolerance is not None:  # lossless: compare with the tone made directly at 16 kHz
        reference = tone(440.0, 0.5, 16000)
        middle = slice(400, 7600)  # resampler edges aside
        assert np.max(np.abs(wave[middle] - reference[middle])) < max(tolerance, 5e-3 if rate != 16000 else tolerance)
    else:
        assert 0.2 < np.sqrt(np.mean(wave[400:7600] ** 2)) < 0.5  # lossy but the tone is there


def test_resampling_keeps_frequency_and_drops_content_above_nyquist():
    low = resample(tone(1000.0, 1.0, 48000), 48000)
    assert len(low) == 16000 and abs(dominant_frequency(low, 16000) - 1000.0) < 2.0
    high = resample(tone(12000.0, 1.0, 48000), 48000)  # above the 8 kHz Nyquist limit of 16 kHz
    assert np.sqrt(np.mean(high[200:-200] ** 2)) < 0.01


@pytest.mark.parametrize("channels", [2, 3, 6])
def test_channels_are_averaged_or_picked(tmp_path, channels):
    base = tone(300.0, 0.25, 16000)
    data = np.stack([base * (k + 1) / channels for k in range(channels)], axis=1)
    path = tmp_path / "multi.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    mixed = read_audio(path)
    np.testing.assert_allclose(mixed, data.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(read_audio(path, channel=0), data[:, 0], atol=1e-6)
    np.testing.assert_allclose(read_audio(path, channel=channels - 1), data[:, -1], atol=1e-6)
    with pytest.raises(AudioError, match="cannot pick channel"):
        read_audio(path, channel=channels)


def test_opposite_channels_cancel(tmp_path):
    base = tone(300.0, 0.25, 16000)
    path = tmp_path / "phase.wav"
    sf.write(path, np.stack([base, -base], axis=1), 16000, subtype="FLOAT")
    assert np.max(np.abs(read_audio(path))) < 1e-6


def test_integer_pcm_is_scaled_to_float():
    np.testing.assert_allclose(
        prepare_waveform(np.array([16384, -32768, 0] * 200, dtype=np.int16))[:3], [0.5, -1.0, 0.0]
    )
    np.testing.assert_allclose(prepare_waveform(np.array([2**30] * 300, dtype=np.int32))[:1], [0.5])
    np.testing.assert_allclose(prepare_waveform(np.array([192, 128, 64] * 100, dtype=np.uint8))[:3], [0.5, 0, -0.5])


def test_in_memory_waveforms_accept_tensors_and_channels_first():
    import torch

    stereo = np.stack([tone(200.0, 0.1, 8000), np.zeros(800, np.float32)])
    wave = prepare_waveform(torch.from_numpy(stereo), 8000)
    assert wave.shape == (1600,)
    np.testing.assert_allclose(wave, resample(stereo.mean(axis=0), 8000), atol=1e-6)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros(0, np.float32), "no samples"),
        (np.array([0.1, np.nan, 0.2] * 100, np.float32), "NaN or infinite"),
        (np.array([0.1, np.inf] * 100, np.float32), "NaN or infinite"),
        (np.zeros((2, 2, 100), np.float32), "shape"),
        (np.array(["a", "b"]), "numbers"),
        (np.zeros(100, np.complex64), "real"),
    ],
)
def test_bad_waveforms_raise_audio_error(bad, match):
    with pytest.raises(AudioError, match=match):
        prepare_waveform(bad, 16000)


@pytest.mark.parametrize("rate", [0, -16000, 1.5, float("nan"), "16000", True, 999, 4e16])
def test_bad_sample_rates(rate):
    with pytest.raises(AudioError, match="sample rate"):
        prepare_waveform(np.zeros(1000, np.float32), rate)


def test_implausible_rate_in_a_file_header(tmp_path):
    path = tmp_path / "slow.wav"
    sf.write(path, tone(10.0, 1.0, 100), 100, subtype="PCM_16")  # libsndfile writes a 100 Hz header
    with pytest.raises(AudioError, match="100 Hz is not plausible"):
        read_audio(path)


def test_trim_silence_cuts_only_the_edges():
    rate = 16000
    speech = tone(200.0, 0.5, rate)
    wave = np.concatenate([np.zeros(rate), speech, np.zeros(rate // 2), speech, np.zeros(rate)])
    trimmed = trim_silence(wave, rate)
    assert abs(len(trimmed) - (2 * len(speech) + rate // 2)) <= 2 * 400  # within a frame at each end
    assert np.all(trim_silence(np.zeros(4000, np.float32)) == 0) and len(trim_silence(np.zeros(4000))) == 4000


def test_trimming_is_off_by_default(tmp_path):
    wave = np.concatenate([np.zeros(8000, np.float32), tone(200.0, 0.5, 16000)])
    path = tmp_path / "lead.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    assert len(read_audio(path)) == len(wave)
    assert len(read_audio(path, trim=True)) < len(wave) - 7000


def test_bad_files_give_specific_errors(tmp_path, monkeypatch):
    good = tmp_path / "good.wav"
    sf.write(good, tone(200.0, 0.5, 16000), 16000, subtype="PCM_16")
    cases = {}
    cases["missing"] = (tmp_path / "missing.wav", "no such file")
    cases["folder"] = (tmp_path, "is a folder")
    (tmp_path / "empty.wav").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.wav", "empty")
    (tmp_path / "text.wav").write_text("hello, I am not audio\n" * 20)
    cases["not audio"] = (tmp_path / "text.wav", "not a readable audio file")
    (tmp_path / "head.wav").write_bytes(good.read_bytes()[:30])
    cases["truncated header"] = (tmp_path / "head.wav", "not a readable audio file")
    (tmp_path / "cut.flac").write_bytes(b"fLaC" + b"\x00" * 10)
    cases["truncated flac"] = (tmp_path / "cut.flac", "not a readable audio file")
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.3] * 100, np.float32), 16000, subtype="FLOAT")
    cases["nan"] = (tmp_path / "nan.wav", "NaN or infinite")
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1), np.float32), 16000, subtype="PCM_16")
    cases["no frames"] = (tmp_path / "zero.wav", "no audio samples|empty|not a readable")
    for path, match in cases.values():
        with pytest.raises(AudioError, match=match):
            read_audio(path)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(good) else real_access(p, mode))
    with pytest.raises(AudioError, match="permission denied"):
        read_audio(good)


def test_truncated_data_still_reads_what_is_there(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, tone(200.0, 1.0, 16000), 16000, subtype="PCM_16")
    data = path.read_bytes()
    (tmp_path / "half.wav").write_bytes(data[: len(data) // 2])
    wave = read_audio(tmp_path / "half.wav")  # libsndfile reads the frames present
    assert 0 < len(wave) < 16000 and np.all(np.isfinite(wave))


def test_directory_scan_ids_are_relative_paths_with_extension(tmp_path):
    for name in ["spk1/a/1.wav", "spk1/b/2.flac", "spk2/3.ogg", "notes.txt", "spk2/.hidden.wav"]:
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_audio_files(tmp_path)] == [
        "spk1/a/1.wav",
        "spk1/b/2.flac",
        "spk2/3.ogg",
    ]
    pairs = list(iter_inputs([tmp_path, tmp_path / "spk2" / "3.ogg"]))
    assert [uid for uid, _ in pairs] == ["spk1/a/1.wav", "spk1/b/2.flac", "spk2/3.ogg", "3.ogg"]
    (tmp_path / "void").mkdir()
    with pytest.raises(AudioError, match="no audio files"):
        list(iter_inputs([tmp_path / "void"]))


def test_wav_scp(tmp_path):
    scp = tmp_path / "wav.scp"
    scp.write_text("utt1 /data/a.wav\n\n# comment\nutt2 relative/b b.flac\n")
    assert read_scp(scp) == [
        ("utt1", tmp_path.__class__("/data/a.wav")),
        ("utt2", tmp_path.__class__("relative/b b.flac")),
    ]
    scp.write_text("utt1 sox a.wav -t wav - |\n")
    with pytest.raises(AudioError, match="wav.scp:1: command pipes"):
        read_scp(scp)
    scp.write_text("lonely\n")
    with pytest.raises(AudioError, match="wav.scp:1: expected"):
        read_scp(scp)
    with pytest.raises(AudioError, match="cannot read list"):
        read_scp(tmp_path / "absent.scp")


def test_measuring_the_level_leaves_no_thread_spinning():
    """The silence check sums squares block by block, in decoding workers too.  With numpy's BLAS
    (np.dot) every block woke its thread pool, whose threads then spin for a while: two decoding
    workers burnt a core's worth of CPU beside the model.  Afterwards the process must be idle."""
    import subprocess
    import sys

    code = (
        "import time, numpy as np\n"
        "from redimnet.audio import SignalLevel\n"
        "blocks = [np.random.default_rng(n).standard_normal(200_000).astype(np.float32) for n in range(5)]\n"
        "time.sleep(0.5)  # whatever started with the imports settles\n"
        "level = SignalLevel()\n"
        "for block in blocks:\n"
        "    level.add(block)\n"
        "cpu = time.process_time(); time.sleep(0.3); print(time.process_time() - cpu, level.samples)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}  # BLAS's own default
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    idle_cpu, samples = done.stdout.split()
    assert int(samples) == 1_000_000
    assert float(idle_cpu) < 0.03  # about 0.1 s with np.dot on two cores


# --- what a header may claim, and the one input policy for samples ---------------------------------------------------
def flac_bytes(rate: int, channels: int, seconds: float) -> bytes:
    """A FLAC of a constant level (a few bytes per block, whatever it decodes to)."""
    import io

    buffer = io.BytesIO()
    frames = int(rate * seconds)
    sf.write(buffer, np.full((frames, channels), 0.25, np.float32), rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def test_a_header_claiming_too_much_is_refused_before_decoding(monkeypatch):
    from redimnet.audio import decode_audio_bytes

    data = flac_bytes(192000, 8, 1.0)  # 1.5 million samples to decode from a few kB
    assert len(data) < 20_000
    monkeypatch.setattr(sf.SoundFile, "read", lambda *a, **k: pytest.fail("decoded although the header was refused"))
    with pytest.raises(AudioError, match=r"'bomb.flac': the header declares 192000 frames x 8 channels at 192000 Hz"):
        decode_audio_bytes(data, "'bomb.flac'", max_decoded_samples=1_000_000)
    with pytest.raises(AudioError, match="at most 0.5 s are accepted"):
        decode_audio_bytes(data, max_seconds=0.5)


@pytest.mark.parametrize(
    "rate, channels, match",
    [(655350, 1, "655350 Hz is not plausible"), (16000, 65, "declares 65 channels; at most 64")],
)
def test_absurd_rates_and_channel_counts_are_refused_everywhere(tmp_path, rate, channels, match):
    from redimnet.audio import decode_audio_bytes

    path = tmp_path / "odd.wav"
    sf.write(path, np.full((rate // 100, channels), 0.25, np.float32), rate, subtype="PCM_16")
    with pytest.raises(AudioError, match=match):
        read_audio(path)
    with pytest.raises(AudioError, match=match):
        decode_audio_bytes(path.read_bytes(), "upload")


def test_uploads_and_files_decode_in_blocks_of_bounded_size(tmp_path, monkeypatch):
    """Memory follows the block, not the header: no read asks for more than MAX_BLOCK_SAMPLES samples."""
    import redimnet.audio.read as audio
    from redimnet.audio import decode_audio_bytes

    data = flac_bytes(48000, 8, 3.0)
    expected = read_audio_bytes_whole(data)
    monkeypatch.setattr(audio, "MAX_BLOCK_SAMPLES", 8 * 5000)
    requests = []
    original = sf.SoundFile.read

    def counting_read(self, frames=-1, *args, **kwargs):
        requests.append(frames * self.channels if frames >= 0 else float("inf"))
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    decoded = decode_audio_bytes(data)
    assert len(requests) > 3 and max(requests) <= 8 * 5000
    np.testing.assert_allclose(decoded, expected, atol=1e-6)
    (tmp_path / "eight.flac").write_bytes(data)
    requests.clear()
    np.testing.assert_allclose(read_audio(tmp_path / "eight.flac"), expected, atol=1e-6)
    assert len(requests) > 3 and max(requests) <= 8 * 5000


def read_audio_bytes_whole(data: bytes) -> np.ndarray:
    """The reference: decode everything at once, average the channels, resample the whole signal."""
    import io

    frames, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return resample(frames.mean(axis=1).astype(np.float32), rate)


@pytest.mark.parametrize("value", [3e38, -1e10, 2.0**31 * 1.01])
def test_huge_samples_are_refused_by_every_reader(tmp_path, value):
    from redimnet.audio import decode_audio_bytes

    wave = tone(200.0, 1.0, 16000)
    wave[1000] = value
    with pytest.raises(AudioError, match="larger than 2.15e[+]09 in magnitude"):
        prepare_waveform(wave, 16000)
    with pytest.raises(AudioError, match="larger than 2.15e[+]09 in magnitude"):
        prepare_waveform(wave.astype(np.float64), 44100)
    sf.write(tmp_path / "loud.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="loud.wav: 1 sample.s. are larger than"):
        read_audio(tmp_path / "loud.wav")
    with pytest.raises(AudioError, match="'up': 1 sample.s. are larger than"):
        decode_audio_bytes((tmp_path / "loud.wav").read_bytes(), "'up'")


def test_loud_but_plausible_samples_still_pass():
    wave = tone(200.0, 1.0, 16000) * 32768.0  # int16 PCM stored as floats without scaling
    assert np.max(np.abs(prepare_waveform(wave, 16000))) > 1000
    with pytest.raises(AudioError, match="100 sample.s. are larger than .*the largest is 1e[+]300"):
        prepare_waveform(np.array([0.1, 1e300, 0.2] * 100), 16000)  # checked before float32 would make it inf
    with pytest.raises(AudioError, match="100 sample.s. are NaN or infinite"):
        prepare_waveform(np.array([0.1, np.nan, 1e300] * 100), 16000)


def test_the_training_reader_follows_the_same_policy(tmp_path):
    from redimnet.audio.read import read_excerpt as read_training_audio

    sf.write(tmp_path / "fast.wav", np.full((6553, 1), 0.25, np.float32), 655350, subtype="PCM_16")
    sf.write(tmp_path / "wide.wav", np.full((160, 65), 0.25, np.float32), 16000, subtype="PCM_16")
    loud = tone(200.0, 1.0, 16000)
    loud[10] = 3e38
    sf.write(tmp_path / "loud.wav", loud, 16000, subtype="FLOAT")
    cases = {"fast.wav": "655350 Hz is not plausible", "wide.wav": "65 channels", "loud.wav": "larger than 2.15e[+]09"}
    for name, why in cases.items():
        for part in ({}, {"frames": 800, "start": 10}):  # the whole file, and a crop
            with pytest.raises(AudioError, match=why):
                read_training_audio(tmp_path / name, 16000, **part)
        with pytest.raises(AudioError, match=why):
            read_training_audio((tmp_path / name).read_bytes(), 16000)
    sf.write(tmp_path / "ok.wav", tone(200.0, 1.0, 48000), 48000, subtype="PCM_16")
    np.testing.assert_allclose(read_training_audio(tmp_path / "ok.wav", 16000), read_audio(tmp_path / "ok.wav"))
