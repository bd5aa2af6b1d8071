"""Trial-list parsing, utterance lookup among embedding ids, and cosine scoring."""

import numpy as np
import pytest

from redimnet.evaluation.scoring import ScoringError, cosine_scores, l2_normalize, prepare_embeddings, write_scores
from redimnet.evaluation.trials import (
    EmbeddingIndex,
    TrialsError,
    index_trials,
    parse_trials,
    read_trials,
    read_utt2spk,
)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_voxceleb_format(tmp_path):
    path = write(
        tmp_path / "veri.txt",
        "1 id10270/5r0dWxy17C8/00001.wav id10270/x6uYqmx31kE/00001.wav\n"
        "0 id10270/5r0dWxy17C8/00001.wav id10300/ize_eiCFEg0/00003.wav\n",
    )
    trials = read_trials(path)
    assert trials.name == "veri" and len(trials) == 2
    assert trials.enroll == ["id10270/5r0dWxy17C8/00001.wav"] * 2
    assert trials.test == ["id10270/x6uYqmx31kE/00001.wav", "id10300/ize_eiCFEg0/00003.wav"]
    assert trials.labels.tolist() == [True, False]
    assert trials.line_numbers == [1, 2]
    assert trials.utterances() == [
        "id10270/5r0dWxy17C8/00001.wav",
        "id10270/x6uYqmx31kE/00001.wav",
        "id10300/ize_eiCFEg0/00003.wav",
    ]


def test_kaldi_format_comments_and_blank_lines(tmp_path):
    path = write(
        tmp_path / "trials", "# enrol test label\n\nutt_a utt_b target\n  utt_a utt_c nontarget  \nutt_c utt_d Target\n"
    )
    trials = read_trials(path)
    assert trials.enroll == ["utt_a", "utt_a", "utt_c"]
    assert trials.labels.tolist() == [True, False, True]
    assert trials.line_numbers == [3, 4, 5]
    assert trials.n_targets == 2


def test_malformed_lines_report_file_and_line(tmp_path):
    path = write(tmp_path / "bad.txt", "1 a b\n2 a b\na b\n0 a c\nx y maybe\n")
    with pytest.raises(TrialsError) as info:
        read_trials(path)
    message = str(info.value)
    assert "3 malformed" in message
    assert f"{path}:2" in message and f"{path}:3" in message and f"{path}:5" in message
    assert f"{path}:4" not in message and f"{path}:1:" not in message
    assert "target|nontarget" in message


def test_many_malformed_lines_are_summarised():
    lines = ["1 a b"] + [f"junk {i}" for i in range(20)]
    with pytest.raises(TrialsError, match=r"(?s)20 malformed.*and 15 more"):
        parse_trials(lines, "list.txt")


def test_missing_empty_and_binary_files(tmp_path):
    with pytest.raises(TrialsError, match="not found"):
        read_trials(tmp_path / "nope.txt")
    with pytest.raises(TrialsError, match="no trials"):
        read_trials(write(tmp_path / "empty.txt", "# nothing\n\n"))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(TrialsError, match="UTF-8"):
        read_trials(binary)


def test_index_exact_and_extension_tolerant():
    index = EmbeddingIndex(["id1/v/00001.wav", "id1/v/00002", "id2/w/00001.flac", "solo.wav"])
    assert index.find("id1/v/00001.wav") == 0
    assert index.find("id1/v/00001") == 0  # trial list without extension
    assert index.find("id1/v/00002.wav") == 1  # embeddings without extension
    assert index.find("id2/w/00001.wav") == 2  # different extension
    assert index.find("./id1/v/00001.wav") == 0
    assert index.find("id1\\v\\00001.wav") == 0
    assert index.find("solo") == 3
    assert index.find("id3/x/00001.wav") is None
    assert index.rows(["id1/v/00002", "missing", "id1/v/00002"]).tolist() == [1, -1, 1]


def test_index_refuses_ambiguous_stems():
    index = EmbeddingIndex(["a/b.wav", "a/b.flac"])
    assert index.find("a/b.wav") == 0 and index.find("a/b.flac") == 1
    assert index.find("a/b") is None
    assert index.find("a/b.m4a") is None


def kaldi(lines):
    return parse_trials(lines, "trials.txt")


def test_index_trials_missing_is_an_error_or_skipped():
    trials = kaldi(["a b target", "a c nontarget", "a z nontarget", "y b target"])
    index = EmbeddingIndex(["a", "b", "c"])
    with pytest.raises(TrialsError) as info:
        index_trials(trials, index, embeddings_name="E.npz")
    message = str(info.value)
    assert "2 of 4 trials" in message and "2 utterance(s)" in message and "E.npz" in message
    assert "line 3" in message and "--skip-missing" in message and "y, z" in message
    result = index_trials(trials, index, skip_missing=True)
    assert result.n_missing_trials == 2 and result.missing_utterances == ["y", "z"]
    assert result.enroll_rows.tolist() == [0, 0] and result.test_rows.tolist() == [1, 2]
    assert result.labels.tolist() == [True, False]
    assert result.kept_pairs() == (["a", "a"], ["b", "c"])


def test_index_trials_needs_both_classes():
    index = EmbeddingIndex(["a", "b", "c"])
    with pytest.raises(TrialsError, match="no non-target trials"):
        index_trials(kaldi(["a b target", "a c target"]), index)
    with pytest.raises(TrialsError, match="no target trials left after skipping"):
        index_trials(kaldi(["a b nontarget", "a z target"]), index, skip_missing=True)
    with pytest.raises(TrialsError, match="none of the 1 trials"):
        index_trials(kaldi(["x y target"]), index, skip_missing=True)


def test_utt2spk(tmp_path):
    assert read_utt2spk(write(tmp_path / "u", "a s1\nb s2\n\n")) == {"a": "s1", "b": "s2"}
    with pytest.raises(TrialsError, match=r"u2:2: expected"):
        read_utt2spk(write(tmp_path / "u2", "a s1\nb\n"))
    with pytest.raises(TrialsError, match="two speakers"):
        read_utt2spk(write(tmp_path / "u3", "a s1\na s2\n"))


def test_cosine_scores_match_direct_computation():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(20, 8)).astype(np.float32) * rng.uniform(0.1, 10, size=(20, 1)).astype(np.float32)
    enroll = rng.integers(0, 20, size=100)
    test = rng.integers(0, 20, size=100)
    expected = [
        float(np.dot(matrix[e], matrix[t]) / np.linalg.norm(matrix[e]) / np.linalg.norm(matrix[t]))
        for e, t in zip(enroll, test)
    ]
    np.testing.assert_allclose(cosine_scores(matrix, enroll, test), expected, rtol=1e-5, atol=1e-6)
    unit = l2_normalize(matrix)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(cosine_scores(unit, enroll, test, normalised=True), expected, rtol=1e-5, atol=1e-6)


def test_mean_subtraction_and_bad_embeddings():
    matrix = np.array([[1.0, 1.0], [1.0, 0.8]], dtype=np.float32)
    mean = l2_normalize(matrix).mean(axis=0)
    centred = prepare_embeddings(matrix, mean)
    # two vectors centred on their mean point in opposite directions
    assert float(centred[0] @ centred[1]) == pytest.approx(-1.0, abs=1e-5)
    with pytest.raises(ScoringError, match="all zeros"):
        l2_normalize(np.zeros((2, 3)))
    with pytest.raises(ScoringError, match="NaN"):
        l2_normalize(np.array([[1.0, np.nan]]))
    with pytest.raises(ScoringError, match="dimension"):
        prepare_embeddings(matrix, np.zeros(3))


def test_write_scores(tmp_path):
    path = write_scores(tmp_path / "out" / "o.scores", ["a", "b"], ["c", "d"], [0.5, -0.25], [True, False])
    assert path.read_text().splitlines() == ["a c 0.500000 target", "b d -0.250000 nontarget"]
