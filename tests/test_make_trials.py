"""scripts/make_trials.py: every same-speaker pair, a drawn set of different-speaker pairs."""

import importlib.util
import itertools
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_trials.py"


@pytest.fixture(scope="module")
def make_trials():
    spec = importlib.util.spec_from_file_location("make_trials_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _folder(root: Path, files_per_speaker=(3, 4, 2)) -> Path:
    for number, count in enumerate(files_per_speaker):
        for index in range(count):
            path = root / f"spk{number}" / "session" / f"{index:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    (root / "loose.wav").write_bytes(b"")  # not in a speaker folder: no speaker, left out
    return root


def test_every_same_speaker_pair_and_distinct_cross_speaker_pairs(tmp_path, make_trials):
    out = tmp_path / "trials.txt"
    assert make_trials.main([str(_folder(tmp_path / "voices")), str(out), "--nontarget", "20"]) == 0
    rows = [line.split() for line in out.read_text().splitlines()]
    targets = {(a, b) for label, a, b in rows if label == "1"}
    others = [(a, b) for label, a, b in rows if label == "0"]
    expected = {
        (a, b)
        for speaker, count in enumerate((3, 4, 2))
        for a, b in itertools.combinations([f"spk{speaker}/session/{i:02d}.wav" for i in range(count)], 2)
    }
    assert targets == expected  # 3 + 6 + 1 pairs
    assert len(others) == 20 == len(set(others))
    assert all(a.split("/")[0] != b.split("/")[0] for a, b in others)
    assert not any("loose.wav" in a or "loose.wav" in b for _, a, b in rows)


def test_the_draw_follows_the_seed(tmp_path, make_trials):
    folder = _folder(tmp_path / "voices")
    texts = []
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        make_trials.main([str(folder), str(tmp_path / name), "--nontarget", "10", "--seed", seed])
        texts.append((tmp_path / name).read_text())
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_refusals(tmp_path, make_trials, capsys):
    folder = _folder(tmp_path / "voices")
    existing = tmp_path / "exists.txt"
    existing.write_text("keep me\n")
    # 3*4 + 3*2 + 4*2 = 26 different-speaker pairs exist
    cases = [
        ([str(folder), str(tmp_path / "x"), "--nontarget", "27"], "only 26 different-speaker pairs exist"),
        ([str(folder), str(existing)], "exists; give a new file name"),
        ([str(tmp_path / "nowhere"), str(tmp_path / "y")], "is not a folder"),
        ([str(folder), str(tmp_path / "z"), "--nontarget", "-1"], "--nontarget must be at least 0"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as stop:
            make_trials.main(argv)
        assert stop.value.code == 2
        assert message in capsys.readouterr().err
    assert existing.read_text() == "keep me\n"
    assert not (tmp_path / "x").exists()
