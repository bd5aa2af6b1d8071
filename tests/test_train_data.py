"""Training lists, shards, sampling and augmentation."""

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from redimnet.audio.read import read_excerpt as read_audio
from redimnet.errors import RedimnetError
from redimnet.training.augment import (
    AugmentationSettings,
    Augmenter,
    add_noise,
    change_speed,
    random_crop,
    reverberate,
)
from redimnet.training.data import (
    CropDataset,
    DataError,
    EpochSampler,
    ExampleMaker,
    ShardDataset,
    collate_examples,
    read_csv_list,
    read_kaldi_lists,
    read_shard_index,
    scan_voxceleb_folder,
    speaker_labels,
    write_kaldi_lists,
    write_shards,
)

SR = 16000


def _tone(freq, seconds=0.5, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(
        np.float32
    )


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
    resumed = next(iter(torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_examples)))
    assert torch.equal(resumed["wave"], batches[3]["wave"])


def test_prepare_verb_writes_lists_and_shards(vox_folder, tmp_path):
    from redimnet.cli import main

    out = tmp_path / "prepared"
    assert main(["prepare", str(vox_folder), "-o", str(out), "--shards", "--utts-per-shard", "4"]) == 0
    assert len((out / "wav.scp").read_text().splitlines()) == 12
    assert (out / "list.csv").read_text().startswith("utt,path,speaker")
    assert sum(read_shard_index(out / "shards")[1]) == 12
    assert main(["prepare", str(tmp_path / "missing"), "-o", str(out)]) == 2


def test_lists_prepared_from_a_relative_folder_name_files_that_exist(vox_folder, tmp_path, monkeypatch):
    # 'redimnet prepare data/train -o data/lists', run from the project folder: the lists are read
    # later (relative paths against the list's own folder), so they must lead to the audio from there
    from redimnet.cli import main

    monkeypatch.chdir(vox_folder.parent)
    assert main(["prepare", vox_folder.name, "-o", "lists"]) == 0
    monkeypatch.chdir(tmp_path.parent)
    for utterances in (
        read_kaldi_lists(vox_folder.parent / "lists" / "wav.scp", vox_folder.parent / "lists" / "utt2spk"),
        read_csv_list(vox_folder.parent / "lists" / "list.csv"),
    ):
        assert len(utterances) == 12 and all(Path(u.path).is_file() for u in utterances)


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
    assert abs(10 * np.log10(np.mean(wave**2) / np.mean(added**2)) - 10.0) < 0.01
    rir = np.zeros(800, dtype=np.float32)
    rir[10], rir[400] = 1.0, 0.5
    wet = reverberate(wave, rir)
    assert wet.shape == wave.shape
    expected = wave.astype(np.float64) + 0.5 * np.concatenate([np.zeros(390), wave[:-390]])
    assert np.corrcoef(wet, expected)[0, 1] > 0.999


def test_augmenter_uses_musan_style_folders(tmp_path):
    from redimnet.testing.synth import write_noise_folder, write_rir_folder

    write_noise_folder(tmp_path / "musan", files=2, seconds=0.5)
    write_rir_folder(tmp_path / "rir", files=2)
    augmenter = Augmenter(
        AugmentationSettings(prob=1.0, noise_dir=str(tmp_path / "musan"), rir_dir=str(tmp_path / "rir")), SR
    )
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


# --------------------------------------------------------------------------- nothing read outside the data


def _secret(tmp_path):
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("root:$6$hash:19000:0:99999:7:::\n")
    return secret


def test_prepare_refuses_links_leading_outside_the_data_folder(vox_folder, tmp_path, capsys):
    from redimnet.cli import main

    secret = _secret(tmp_path)
    (vox_folder / "spk0" / "vid0" / "stolen.wav").symlink_to(secret)
    outside_audio = tmp_path / "outside" / "voice.wav"
    soundfile.write(outside_audio, _tone(300), SR)
    (vox_folder / "spk1" / "vid0" / "linked.wav").symlink_to(outside_audio)
    (vox_folder / "spk2" / "elsewhere").symlink_to(tmp_path / "outside", target_is_directory=True)
    (vox_folder / "spk2" / "vid0" / "inside.wav").symlink_to(vox_folder / "spk0" / "vid0" / "00000.wav")
    out = tmp_path / "prepared"
    assert main(["prepare", str(vox_folder), "-o", str(out), "--shards", "--utts-per-shard", "4"]) == 1
    err = capsys.readouterr().err
    assert "stolen.wav" in err and "outside" in err and "--follow-symlinks" in err
    report = (out / "refused.tsv").read_text()
    assert "stolen.wav" in report and "linked.wav" in report and "elsewhere" in report
    listed = (out / "wav.scp").read_text()
    assert "secret" not in listed and "stolen" not in listed and "linked" not in listed
    assert len(listed.splitlines()) == 13  # the 12 files and the link that stays inside the folder
    packed = b"".join(p.read_bytes() for p in (out / "shards").glob("*.tar"))
    assert b"root:$6$hash" not in packed and sum(read_shard_index(out / "shards")[1]) == 13
    # with --follow-symlinks the outside audio is accepted, but the secret is still no audio
    assert main(["prepare", str(vox_folder), "-o", str(out), "--shards", "--follow-symlinks"]) == 1
    report = (out / "refused.tsv").read_text()
    assert "stolen.wav" in report and "not decodable audio" in report and "linked.wav" not in report
    assert b"root:$6$hash" not in b"".join(p.read_bytes() for p in (out / "shards").glob("*.tar"))
    assert "linked.wav" in (out / "wav.scp").read_text()
    assert "elsewhere/voice.wav" in (out / "wav.scp").read_text()


def test_broken_links_loops_and_non_audio_are_reported(vox_folder, tmp_path):
    from redimnet.training.data import scan_data_folder

    (vox_folder / "spk0" / "vid0" / "dangling.wav").symlink_to(tmp_path / "nothing.wav")
    (vox_folder / "spk0" / "vid0" / "loop.wav").symlink_to(vox_folder / "spk0" / "vid0" / "loop.wav")
    (vox_folder / "spk1" / "vid0" / "text.wav").write_text("not audio")
    scan = scan_data_folder(vox_folder)
    reasons = {Path(p).name: r for p, r in scan.refused}
    assert "does not exist" in reasons["dangling.wav"] and "loop" in reasons["loop.wav"]
    assert "not decodable audio" in reasons["text.wav"] and len(scan.utterances) == 12


def _shards(vox_folder, tmp_path):
    return write_shards(scan_voxceleb_folder(vox_folder), tmp_path / "shards", per_shard=6)


def _rewrite_index(index, **changes):
    import json

    content = json.loads(index.read_text())
    content.update(changes)
    index.write_text(json.dumps(content))


@pytest.mark.parametrize("entry", ["../x.tar", "/ABS/x.tar", "sub/../../x.tar"])
def test_shard_index_entries_must_stay_in_its_folder(vox_folder, tmp_path, entry):
    index = _shards(vox_folder, tmp_path)
    escaped = tmp_path / "x.tar"
    escaped.write_bytes((tmp_path / "shards" / "shard-000000.tar").read_bytes())
    entry = entry.replace("/ABS", str(tmp_path))
    _rewrite_index(index, shards=[{"path": entry, "count": 6}])
    with pytest.raises(DataError, match=r"leads outside the index's folder") as error:
        read_shard_index(index)
    assert str(index) in str(error.value)


@pytest.mark.parametrize(
    "content, problem",
    [
        ('{"format": "redimnet-shards-1", "shards": [{"path": 3}], "speakers": ["a"]}', "non-empty 'path'"),
        ('{"format": "redimnet-shards-1", "shards": [{"path": "s.tar"}], "speakers": ["a"]}', "count"),
        ('{"format": "redimnet-shards-1", "shards": "s.tar", "speakers": ["a"]}', "'shards' must be"),
        ('{"format": "redimnet-shards-1", "shards": [{"path": "s.tar", "count": 1}]}', "'speakers' must be"),
        ('{"format": "redimnet-shards-1", "shards": [', "cannot read shard index"),
    ],
)
def test_malformed_shard_index_names_the_file(tmp_path, content, problem):
    index = tmp_path / "shards.json"
    index.write_text(content)
    with pytest.raises(DataError, match=problem) as error:
        read_shard_index(index)
    assert str(index) in str(error.value)


def test_a_member_that_is_not_a_tar_shard_is_named(vox_folder, tmp_path):
    index = _shards(vox_folder, tmp_path)
    shard = tmp_path / "shards" / "shard-000001.tar"
    shard.write_bytes(b"this is not a tar archive\n" * 512)  # a whole number of blocks, no tar header
    with pytest.raises(DataError, match="not a tar file") as error:
        read_shard_index(index)
    assert str(shard) in str(error.value)


def test_truncated_shards_are_named(vox_folder, tmp_path):
    index = _shards(vox_folder, tmp_path)
    shard = tmp_path / "shards" / "shard-000000.tar"
    whole = shard.read_bytes()
    shard.write_bytes(whole[: len(whole) // 2 + 100])  # cut in the middle of a block
    with pytest.raises(DataError, match="truncated") as error:
        read_shard_index(index)
    assert str(shard) in str(error.value)
    # cut at a block boundary: only streaming can notice, and names the shard
    shard.write_bytes(whole[: 512 * 20])
    labels = speaker_labels(read_shard_index(index)[2])
    dataset = ShardDataset(
        index, labels, ExampleMaker(crop_samples=1000, sample_rate=SR, num_speakers=3), seed=0, batch_size=2
    )
    with pytest.raises(DataError, match="truncated") as error:
        for _ in dataset._raw_stream(0, 1):
            pass
    assert str(shard) in str(error.value)


def test_training_on_a_broken_shard_set_is_a_clear_cli_error(vox_folder, tmp_path, capsys):
    import yaml

    from redimnet.cli import main

    index = _shards(vox_folder, tmp_path)
    (tmp_path / "shards" / "shard-000001.tar").write_bytes(b"\0" * 1024)
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {"data": {"shards": str(index)}, "train": {"output_dir": str(tmp_path / "run"), "progress": False}}
        )
    )
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("redimnet: error:") and "shard-000001.tar" in err and "unexpected" not in err


def test_unlistable_names_are_refused_one_by_one(vox_folder, tmp_path):
    from redimnet.cli import main

    soundfile.write(vox_folder / "loose.wav", _tone(300), SR)
    soundfile.write(vox_folder / "spk0" / "vid0" / "two\nlines.wav", _tone(300), SR)
    out = tmp_path / "prepared"
    assert main(["prepare", str(vox_folder), "-o", str(out)]) == 1
    assert len((out / "wav.scp").read_text().splitlines()) == 12
    report = (out / "refused.tsv").read_text().splitlines()
    assert len(report) == 3 and all(line.count("\t") == 1 for line in report)
    assert any("two\\nlines.wav" in line and "control character" in line for line in report)
    assert any("loose.wav" in line and "directly in" in line for line in report)
