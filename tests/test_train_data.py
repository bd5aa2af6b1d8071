"""Training lists, shards, sampling and augmentation."""

import numpy as np
import pytest
import soundfile
import torch

from redimnet.errors import RedimnetError

from redimnet.training.augment import (AugmentationSettings, Augmenter, add_noise, change_speed, random_crop,
                                       read_audio, reverberate)
from redimnet.training.data import (CropDataset, DataError, EpochSampler, ExampleMaker, ShardDataset,
                                    collate_examples, read_csv_list, read_kaldi_lists, read_shard_index,
                                    scan_voxceleb_folder, speaker_labels, write_kaldi_lists, write_shards)

SR = 16000


def _tone(freq, seconds=0.5, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(
        np.float32)


@pytest.fixture
def vox_folder(tmp_path):
    root = tmp_path / "vox"
    for s in range(3):
        for u in range(4):
            path = root / f"spk{s}" / f"vid{u % 2}" / f"{u:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, _tone(200 + 100 * s, seed=u), SR)
    return root


def test_scan_write_and_read_kaldi_lists(vox_folder, tmp_path):
    utts = scan_voxceleb_folder(vox_folder)
    assert len(utts) == 12 and utts[0].utt == "spk0/vid0/00000.wav" and utts[0].speaker == "spk0"
    wav_scp, utt2spk = write_kaldi_lists(utts, tmp_path / "lists")
    again = read_kaldi_lists(wav_scp, utt2spk)
    assert [(u.utt, u.speaker) for u in again] == [(u.utt, u.speaker) for u in utts]
    assert speaker_labels([u.speaker for u in again]) == {"spk0": 0, "spk1": 1, "spk2": 2}
    assert (tmp_path / "lists" / "spk2utt").read_text().startswith("spk0 spk0/vid0/00000.wav")


def test_malformed_lists_name_file_and_line(tmp_path):
    scp = tmp_path / "wav.scp"
    scp.write_text("a /x.wav\nbroken\n")
    (tmp_path / "utt2spk").write_text("a s\n")
    with pytest.raises(DataError, match=r"wav.scp:2"):
        read_kaldi_lists(scp, tmp_path / "utt2spk")
    scp.write_text("a /x.wav\nb /y.wav\n")
    with pytest.raises(DataError, match="no speaker.*'b'"):
        read_kaldi_lists(scp, tmp_path / "utt2spk")
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("utt,file,speaker\na,x.wav,s\n")
    with pytest.raises(DataError, match="missing path"):
        read_csv_list(csv_path)


def test_csv_list_relative_paths(tmp_path):
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("utt,path,speaker\na,audio/a.wav,s1\n")
    (utt,) = read_csv_list(csv_path)
    assert utt.path == str(tmp_path.resolve() / "audio" / "a.wav") and utt.speaker == "s1"


def test_epoch_sampler_splits_batches_between_processes():
    keys = [list(EpochSampler(50, 4, steps=6, seed=1, epoch=2, rank=r, world_size=2)) for r in range(2)]
    positions = [k[1] for ks in keys for k in ks]
    assert sorted(positions) == list(range(48))  # every position once, no overlap
    assert all(k[0] == 2 for ks in keys for k in ks)
    resumed = list(EpochSampler(50, 4, steps=6, seed=1, epoch=2, rank=1, world_size=2, start_step=3))
    assert resumed == keys[1][12:]
    other_epoch = list(EpochSampler(50, 4, steps=6, seed=1, epoch=3, rank=1, world_size=2))
    assert [k[2] for k in other_epoch] != [k[2] for k in keys[1]]


def test_crop_dataset_is_deterministic_and_speed_changes_class(vox_folder):
    utts = scan_voxceleb_folder(vox_folder)
    labels = speaker_labels([u.speaker for u in utts])
    maker = ExampleMaker(crop_samples=4000, sample_rate=SR, num_speakers=3, speed_factors=(0.9, 1.1))
    dataset = CropDataset(utts, labels, maker, seed=5)
    a, b = dataset[(0, 7, 3)], dataset[(0, 7, 3)]
    assert np.array_equal(a["wave"], b["wave"]) and a["label"] == b["label"]
    assert a["wave"].shape == (4000,) and a["failed"] == 0
    seen = {dataset[(0, p, 0)]["label"] for p in range(40)}
    assert seen == {0, 3, 6}  # speaker 0 at speed 1.0, 0.9 and 1.1
    assert maker.num_classes == 9


def test_unreadable_audio_is_skipped_and_counted(vox_folder):
    utts = scan_voxceleb_folder(vox_folder)
    broken = utts[0].path
    with open(broken, "wb") as handle:
        handle.write(b"not audio at all")
    maker = ExampleMaker(crop_samples=2000, sample_rate=SR, num_speakers=3)
    dataset = CropDataset(utts, speaker_labels([u.speaker for u in utts]), maker, seed=0)
    item = dataset[(0, 0, 0)]
    assert item["failed"] == 1 and broken in item["failed_paths"][0] and item["wave"].shape == (2000,)
    batch = collate_examples([item, dataset[(0, 1, 1)]])
    assert batch["failed"] == 1 and batch["attempted"] == 3 and batch["wave"].shape == (2, 2000)


def test_shards_hold_every_utterance_and_stream_in_workers(vox_folder, tmp_path):
    utts = scan_voxceleb_folder(vox_folder)
    index = write_shards(utts, tmp_path / "shards", per_shard=5)
    shards, counts, speakers = read_shard_index(index)
    assert len(shards) == 3 and sum(counts) == 12 and speakers == ["spk0", "spk1", "spk2"]
    labels = speaker_labels(speakers)
    maker = ExampleMaker(crop_samples=1000, sample_rate=SR, num_speakers=3)
    dataset = ShardDataset(index, labels, maker, seed=0, batch_size=2, shuffle_buffer=4)
    # one pass of a single reader covers every utterance once before cycling
    stream = dataset._raw_stream(0, 1)
    first_pass = [next(stream)[0]["utt"] for _ in range(12)]
    assert sorted(first_pass) == sorted(u.utt for u in utts)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_examples)
    batches = [b for _, b in zip(range(4), loader)]
    assert all(b["wave"].shape == (2, 1000) for b in batches)
    # a resumed epoch skips batches exactly
    dataset.set_epoch(0, skip_batches=3)
    resumed = next(iter(torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2,
                                                    collate_fn=collate_examples)))
    assert torch.equal(resumed["wave"], batches[3]["wave"])


def test_prepare_verb_writes_lists_and_shards(vox_folder, tmp_path):
    from redimnet.cli import main
    out = tmp_path / "prepared"
    assert main(["prepare", str(vox_folder), "-o", str(out), "--shards", "--utts-per-shard", "4"]) == 0
    assert len((out / "wav.scp").read_text().splitlines()) == 12
    assert (out / "list.csv").read_text().startswith("utt,path,speaker")
    assert sum(read_shard_index(out / "shards")[1]) == 12
    assert main(["prepare", str(tmp_path / "missing"), "-o", str(out)]) == 2


def test_crop_speed_noise_and_reverb():
    rng = np.random.default_rng(0)
    wave = _tone(440, seconds=1.0)
    assert random_crop(wave[:100], 1000, rng).shape == (1000,)  # short input is repeated
    faster = change_speed(wave, 1.1)
    assert abs(faster.size - wave.size / 1.1) < 5
    # pitch follows the speed: the spectral peak moves from 440 to ~484 Hz
    peak = np.argmax(np.abs(np.fft.rfft(faster[:8000]))) * SR / 8000
    assert abs(peak - 484) < 6
    noise = np.random.default_rng(1).standard_normal(4000).astype(np.float32)
    mixed = add_noise(wave, noise, snr_db=10.0)
    added = mixed - wave
    assert abs(10 * np.log10(np.mean(wave ** 2) / np.mean(added ** 2)) - 10.0) < 0.01
    rir = np.zeros(800, dtype=np.float32)
    rir[10], rir[400] = 1.0, 0.5
    wet = reverberate(wave, rir)
    assert wet.shape == wave.shape
    expected = wave.astype(np.float64) + 0.5 * np.concatenate([np.zeros(390), wave[:-390]])
    assert np.corrcoef(wet, expected)[0, 1] > 0.999


def test_augmenter_uses_musan_style_folders(tmp_path):
    from redimnet.synth import write_noise_folder, write_rir_folder
    write_noise_folder(tmp_path / "musan", files=2, seconds=0.5)
    write_rir_folder(tmp_path / "rir", files=2)
    augmenter = Augmenter(AugmentationSettings(prob=1.0, noise_dir=str(tmp_path / "musan"),
                                               rir_dir=str(tmp_path / "rir")), SR)
    assert augmenter.kinds == ["reverb", "noise", "music", "babble"]
    wave = _tone(300)
    outputs = [augmenter(wave, np.random.default_rng(seed)) for seed in range(8)]
    assert all(o.shape == wave.shape and np.isfinite(o).all() and not np.array_equal(o, wave) for o in outputs)
    assert np.array_equal(augmenter(wave, np.random.default_rng(3)), outputs[3])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RedimnetError, match="augment.rir: no audio files"):
        Augmenter(AugmentationSettings(rir_dir=str(tmp_path / "empty")), SR)


def test_read_audio_resamples_and_mixes_down(tmp_path):
    path = tmp_path / "stereo8k.wav"
    soundfile.write(path, np.stack([_tone(300, seed=1)[:4000], _tone(300, seed=2)[:4000]], axis=1), 8000)
    wave = read_audio(path, SR)
    assert wave.ndim == 1 and abs(wave.size - 8000) <= 2
