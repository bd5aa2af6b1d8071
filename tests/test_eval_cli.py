"""``redimnet eval`` and ``redimnet cohort`` end to end on synthetic embeddings."""

import json
import sys
import types

import numpy as np
import pytest

import redimnet.cli as cli
from redimnet.embedding.io import load_embeddings, save_embeddings
from redimnet.evaluation.metrics import eer, min_dcf


@pytest.fixture(autouse=True)
def only_evaluation_verbs(monkeypatch):
    """Run the real ``main`` (errors, exit codes) with just the verbs under test registered."""
    monkeypatch.setattr(cli, "VERB_MODULES", ["evaluate", "cohort"], raising=False)
    if not hasattr(cli, "_verb_modules"):  # older registration by module objects
        from redimnet.cli import cohort, evaluate

        monkeypatch.setattr(cli, "VERBS", [evaluate, cohort], raising=False)


def run(*argv):
    return cli.main([str(a) for a in argv])


def make_population(tmp_path, n_speakers=8, per_speaker=4, dim=16, seed=0, noise=0.8):
    """Embeddings of VoxCeleb-like ids, all-pairs trial list; returns (ids, matrix, speakers, npz path)."""
    rng = np.random.default_rng(seed)
    ids, rows, speakers = [], [], []
    for s in range(n_speakers):
        centre = rng.normal(size=dim)
        for u in range(per_speaker):
            ids.append(f"id{10000 + s}/video{u % 2}/{u:05d}.wav")
            rows.append(centre + noise * rng.normal(size=dim))
            speakers.append(s)
    matrix = np.asarray(rows, dtype=np.float32)
    path = save_embeddings(tmp_path / "emb.npz", ids, matrix)
    return ids, matrix, np.asarray(speakers), path


def write_vox_trials(path, ids, speakers, pairs):
    with open(path, "w") as stream:
        for i, j in pairs:
            stream.write(f"{int(speakers[i] == speakers[j])} {ids[i]} {ids[j]}\n")
    return path


def all_pairs(n):
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def direct_cosine(matrix, i, j):
    return float(matrix[i] @ matrix[j] / np.linalg.norm(matrix[i]) / np.linalg.norm(matrix[j]))


def test_eval_end_to_end(tmp_path, capsys):
    ids, matrix, speakers, emb = make_population(tmp_path)
    pairs = all_pairs(len(ids))
    vox = write_vox_trials(tmp_path / "vox_list.txt", ids, speakers, pairs)
    # a Kaldi-format list of the first 100 pairs, ids without extensions
    kaldi = tmp_path / "kaldi_trials"
    kaldi.write_text(
        "".join(
            f"{ids[i][:-4]} {ids[j][:-4]} {'target' if speakers[i] == speakers[j] else 'nontarget'}\n"
            for i, j in pairs[:100]
        )
    )
    out = tmp_path / "scores"
    assert run("eval", "--trials", vox, kaldi, "--embeddings", emb, "--output-dir", out) == 0
    printed = capsys.readouterr().out

    labels = np.array([speakers[i] == speakers[j] for i, j in pairs])
    expected = np.array([direct_cosine(matrix, i, j) for i, j in pairs])
    lines = (out / "vox_list.scores").read_text().splitlines()
    assert len(lines) == len(pairs)
    first = lines[0].split()
    assert first[:2] == [ids[0], ids[1]] and first[3] == ("target" if labels[0] else "nontarget")
    written = np.array([float(line.split()[2]) for line in lines])
    np.testing.assert_allclose(written, expected, atol=2e-6)
    assert [line.split()[3] == "target" for line in lines] == labels.tolist()
    assert len((out / "kaldi_trials.scores").read_text().splitlines()) == 100

    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line.split()}
    assert rows["vox_list"][1] == str(len(pairs)) and rows["vox_list"][2] == str(int(labels.sum()))
    assert float(rows["vox_list"][4]) == pytest.approx(100 * eer(expected, labels), abs=1e-3)
    assert float(rows["vox_list"][5]) == pytest.approx(min_dcf(expected, labels, 0.01), abs=1e-4)
    assert float(rows["vox_list"][6]) == pytest.approx(min_dcf(expected, labels, 0.05), abs=1e-4)
    assert rows["kaldi_trials"][1] == "100"
    assert "minDCF(0.01)" in printed and "minDCF(0.05)" in printed


def test_eval_json(tmp_path, capsys):
    ids, matrix, speakers, emb = make_population(tmp_path)
    pairs = all_pairs(len(ids))
    trials = write_vox_trials(tmp_path / "o.txt", ids, speakers, pairs)
    assert run("eval", "--trials", trials, "--embeddings", emb, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    (result,) = report["results"]
    labels = np.array([speakers[i] == speakers[j] for i, j in pairs])
    expected = np.array([direct_cosine(matrix, i, j) for i, j in pairs])
    assert result["name"] == "o" and result["trials"] == len(pairs) and result["targets"] == labels.sum()
    assert result["eer"] == pytest.approx(eer(expected, labels), abs=1e-6)
    assert result["min_dcf"]["0.05"]["value"] == pytest.approx(min_dcf(expected, labels, 0.05), abs=1e-6)
    assert result["score_file"] is None and report["settings"]["normalisation"] == "none"


def test_missing_embeddings_error_then_skip(tmp_path, capsys):
    ids, matrix, speakers, emb = make_population(tmp_path)
    pairs = all_pairs(len(ids))[:50]
    trials = write_vox_trials(tmp_path / "t.txt", ids, speakers, pairs)
    with open(trials, "a") as stream:
        stream.write("0 id10000/video0/00000.wav id99999/nowhere/00001.wav\n")
        stream.write("1 id99998/gone/00001.wav id10000/video0/00000.wav\n")
    assert run("eval", "--trials", trials, "--embeddings", emb) == 2
    error = capsys.readouterr().err
    assert error.startswith("redimnet: error: 2 of 52 trials") and "--skip-missing" in error
    assert "line 51" in error and "Traceback" not in error

    assert run("eval", "--trials", trials, "--embeddings", emb, "--json", "--skip-missing") == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)["results"][0]
    assert result["trials"] == 50 and result["missing_trials"] == 2 and result["missing_utterances"] == 2
    assert "skipped 2 trial(s)" in captured.err


def test_malformed_and_single_class_lists(tmp_path, capsys):
    ids, matrix, speakers, emb = make_population(tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_text(f"1 {ids[0]} {ids[1]}\n1 {ids[0]}\n")
    assert run("eval", "--trials", bad, "--embeddings", emb) == 2
    assert f"{bad}:2" in capsys.readouterr().err

    only_targets = tmp_path / "targets.txt"
    only_targets.write_text(f"1 {ids[0]} {ids[1]}\n1 {ids[0]} {ids[2]}\n")
    assert run("eval", "--trials", only_targets, "--embeddings", emb) == 2
    error = capsys.readouterr().err
    assert "no non-target trials" in error and "nan" not in error.lower()


def test_option_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REDIMNET_CACHE", str(tmp_path / "cache"))  # the default model is looked for here ...
    monkeypatch.setenv("REDIMNET_BASE_URL", "http://127.0.0.1:9/")  # ... and not found: nothing downloads
    ids, matrix, speakers, emb = make_population(tmp_path)
    trials = write_vox_trials(tmp_path / "t.txt", ids, speakers, all_pairs(len(ids))[:40])
    cases = [
        (["--embeddings", emb, "--audio-root", tmp_path], "exactly one of"),
        ([], "exactly one of"),
        (["--audio-root", tmp_path], "cannot download http://127.0.0.1:9/b2-vox2-ft_lm.pt (offline?)"),
        (["--embeddings", emb, "--model", "b0"], "only used with --audio-root"),
        (["--embeddings", emb, "--norm", "asnorm"], "needs a cohort"),
        (["--embeddings", emb, "--subtract-mean", "cohort"], "needs --cohort"),
        (["--embeddings", emb, "--cohort", emb, "--top-k", "1"], "--top-k"),
        (["--embeddings", tmp_path / "none.npz"], "not found"),
    ]
    for extra, words in cases:
        assert run("eval", "--trials", trials, *extra) == 2, extra
        assert words in capsys.readouterr().err, extra


def test_audio_root_without_extraction_support(tmp_path, capsys, monkeypatch):
    ids, matrix, speakers, emb = make_population(tmp_path)
    trials = write_vox_trials(tmp_path / "t.txt", ids, speakers, all_pairs(len(ids))[:40])
    monkeypatch.setitem(sys.modules, "redimnet.embedding.embedder", None)  # import fails
    assert (
        run("eval", "--trials", trials, "--audio-root", tmp_path, "--model", "b0", "--cache", tmp_path / "cache.npz")
        == 2
    )
    error = capsys.readouterr().err
    assert "redimnet embed" in error and "--embeddings" in error


def test_audio_root_extracts_once_then_uses_cache(tmp_path, capsys, monkeypatch):
    ids, matrix, speakers, emb = make_population(tmp_path)
    pairs = all_pairs(len(ids))
    trials = write_vox_trials(tmp_path / "t.txt", ids, speakers, pairs)
    calls = []

    def embed_directory(model_passed, root, wanted, cache_path):
        assert model_passed is model
        calls.append((root, sorted(wanted), cache_path))
        lookup = dict(zip(ids, matrix))
        save_embeddings(cache_path, wanted, np.stack([lookup[u] for u in wanted]), model=model_fingerprint(model))
        return load_embeddings(cache_path)

    monkeypatch.setitem(
        sys.modules, "redimnet.embedding.embedder", types.SimpleNamespace(embed_directory=embed_directory)
    )
    import torch

    import redimnet.cli.evaluate as evaluate
    from redimnet.models.fingerprint import model_fingerprint

    model = torch.nn.Linear(2, 2)  # loading a real model is not what this test is about
    monkeypatch.setattr(evaluate, "model_from_arguments", lambda args: model)
    cache = tmp_path / "cache.npz"
    args = ["eval", "--trials", trials, "--audio-root", tmp_path, "--model", "b0", "--cache", cache, "--json"]
    assert run(*args) == 0
    first = json.loads(capsys.readouterr().out)["results"][0]
    assert len(calls) == 1 and calls[0][1] == sorted(ids) and calls[0][2] == cache
    assert run(*args) == 0
    second = json.loads(capsys.readouterr().out)["results"][0]
    assert len(calls) == 1  # served from the cache
    assert first["eer"] == second["eer"]
    labels = np.array([speakers[i] == speakers[j] for i, j in pairs])
    expected = np.array([direct_cosine(matrix, i, j) for i, j in pairs])
    assert first["eer"] == pytest.approx(eer(expected, labels), abs=1e-6)


def test_cohort_and_normalised_eval(tmp_path, capsys):
    ids, matrix, speakers, emb = make_population(tmp_path, n_speakers=10)
    train_ids, train_matrix, _, _ = make_population(tmp_path / "train", n_speakers=30, per_speaker=3, seed=5)
    train = save_embeddings(tmp_path / "train.npz", [f"train/{i}" for i in train_ids], train_matrix)

    # speaker = first path component: everything is 'train' -> one speaker
    assert run("cohort", "--embeddings", train, "-o", tmp_path / "one.npz") == 0
    assert "1 speakers" in capsys.readouterr().out
    utt2spk = tmp_path / "utt2spk"
    utt2spk.write_text("".join(f"train/{i} {i.split('/')[0]}\n" for i in train_ids))
    cohort = tmp_path / "cohort.npz"
    assert run("cohort", "--embeddings", train, "--utt2spk", utt2spk, "-o", cohort) == 0
    assert "30 speakers" in capsys.readouterr().out
    speakers_in_cohort, means = load_embeddings(cohort)
    assert len(speakers_in_cohort) == 30 and np.allclose(np.linalg.norm(means, axis=1), 1, atol=1e-5)

    trials = write_vox_trials(tmp_path / "t.txt", ids, speakers, all_pairs(len(ids)))
    results = {}
    for extra in (
        ["--norm", "none", "--subtract-mean", "cohort"],
        ["--norm", "snorm"],
        ["--top-k", "10"],
        ["--subtract-mean", "eval"],
        [],
    ):
        assert run("eval", "--trials", trials, "--embeddings", emb, "--cohort", cohort, "--json", *extra) == 0, extra
        report = json.loads(capsys.readouterr().out)
        results[" ".join(extra)] = report
        assert 0 <= report["results"][0]["eer"] < 0.5
    assert results[""]["settings"]["normalisation"] == "asnorm"
    assert results[""]["settings"]["top_k"] == 30  # --top-k 300 capped at the cohort size
    assert results["--norm snorm"]["results"][0]["eer"] == pytest.approx(results[""]["results"][0]["eer"])
    assert results["--top-k 10"]["settings"]["top_k"] == 10

    bad_cohort = save_embeddings(tmp_path / "bad_cohort.npz", ["a", "b"], np.ones((2, 3)))
    assert run("eval", "--trials", trials, "--embeddings", emb, "--cohort", bad_cohort) == 2
    assert "same model" in capsys.readouterr().err
    assert run("cohort", "--embeddings", train, "--utt2spk", tmp_path / "nope", "-o", cohort) == 2
    assert "utt2spk file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    ids, matrix, speakers, emb = make_population(tmp_path)
    pairs = all_pairs(len(ids))
    a = write_vox_trials(tmp_path / "a.txt", ids, speakers, pairs[:200])
    b = write_vox_trials(tmp_path / "b.txt", ids, speakers, pairs[200:])
    assert run("eval", "--trials", a, b, "--embeddings", emb, "--plot", tmp_path / "plots") == 0
    for name in ("det.png", "scores_a.png", "scores_b.png"):
        data = (tmp_path / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert f"plot: {tmp_path / 'plots' / 'det.png'}" in capsys.readouterr().out


def test_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    ids, matrix, speakers, emb = make_population(tmp_path)
    trials = write_vox_trials(tmp_path / "t.txt", ids, speakers, all_pairs(len(ids))[:40])
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    assert run("eval", "--trials", trials, "--embeddings", emb, "--plot", tmp_path / "p") == 2
    assert 'pip install "redimnet[plot]"' in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_audio_root_never_reads_outside_the_root(tmp_path, capsys, b0_model_and_checkpoint):
    import soundfile as sf

    _, checkpoint = b0_model_and_checkpoint
    rng = np.random.default_rng(0)
    root = tmp_path / "audio"
    (root / "spk").mkdir(parents=True)
    for name in ("a.wav", "b.wav"):
        sf.write(root / "spk" / name, rng.standard_normal(8000) * 0.1, 16000, subtype="PCM_16")
    sf.write(tmp_path / "secret.wav", rng.standard_normal(8000) * 0.1, 16000, subtype="PCM_16")
    trials = tmp_path / "trials.txt"
    trials.write_text("1 spk/a.wav spk/b.wav\n0 spk/a.wav ../secret.wav\n")
    code = run(
        "eval", "--trials", trials, "--audio-root", root, "--checkpoint", checkpoint, "--cache", tmp_path / "cache.npz"
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "trial utterance id '../secret.wav'" in err and ".." in err
    # the good files were embedded and cached; the file outside the root was not
    ids, _ = load_embeddings(tmp_path / "cache.npz")
    assert sorted(ids.tolist()) == ["spk/a.wav", "spk/b.wav"]


@pytest.mark.slow
def test_an_embeddings_cache_is_reused_only_by_the_model_that_made_it(tmp_path, capsys, b0_model_and_checkpoint):
    import soundfile as sf
    import torch

    import redimnet
    from redimnet.embedding.io import embeddings_model
    from redimnet.models.fingerprint import model_fingerprint

    model, checkpoint = b0_model_and_checkpoint
    other = redimnet.build("b0").eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    other_checkpoint = redimnet.save_checkpoint(other, tmp_path / "other.pt")
    rng = np.random.default_rng(1)
    root = tmp_path / "audio"
    for speaker in ("s1", "s2"):
        (root / speaker).mkdir(parents=True)
        for name in ("a.wav", "b.wav"):
            sf.write(root / speaker / name, rng.standard_normal(8000) * 0.1, 16000, subtype="PCM_16")
    trials = tmp_path / "trials.txt"
    trials.write_text("1 s1/a.wav s1/b.wav\n0 s1/a.wav s2/a.wav\n1 s2/a.wav s2/b.wav\n0 s1/b.wav s2/b.wav\n")
    cache = tmp_path / "cache.npz"
    args = ["eval", "--trials", trials, "--audio-root", root, "--cache", cache, "--json"]

    assert run(*args, "--checkpoint", checkpoint) == 0
    first = json.loads(capsys.readouterr().out)["results"][0]
    assert embeddings_model(cache) == model_fingerprint(model)
    written = cache.read_bytes()

    # another model never gets the first model's embeddings, and the cache is left as it was
    assert run(*args, "--checkpoint", other_checkpoint) == 2
    error = capsys.readouterr().err
    assert "another model" in error and str(cache) in error and "Traceback" not in error
    assert cache.read_bytes() == written

    # a cache that does not say which model made it is not trusted either
    ids, matrix = load_embeddings(cache)
    save_embeddings(cache, ids, matrix)
    assert run(*args, "--checkpoint", checkpoint) == 2
    assert "does not record which model" in capsys.readouterr().err

    # the library function refuses the same way
    from redimnet.embedding.embedder import embed_directory
    from redimnet.embedding.io import EmbeddingsFileError

    save_embeddings(cache, ids, matrix, model=model_fingerprint(model))
    with pytest.raises(EmbeddingsFileError, match="another model"):
        embed_directory(other, root, ids.tolist(), cache, progress=False)
    assert run(*args, "--checkpoint", checkpoint) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["eer"] == first["eer"]
