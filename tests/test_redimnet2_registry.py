"""ReDimNet2 in the one registry: presets by name, its release table, and ``--model redimnet2-...``
in the command-line verbs (weights served by a local HTTP server, never the network)."""

import numpy as np
import pytest
import soundfile as sf
import torch
from test_pretrained import _Server

import redimnet
from redimnet import cli
from redimnet.hub import registry
from redimnet.models.redimnet2 import presets

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_presets_and_release_table_are_registered():
    names = [f"redimnet2-b{i}" for i in range(7)] + ["redimnet2-b6-vb2"]
    assert registry.list_models("redimnet2") == names
    for i in range(7):
        weights = registry.list_weights(f"redimnet2-b{i}")
        assert weights == [f"redimnet2-b{i}.vox2-lm", f"redimnet2-b{i}.vox2-ptn"]  # lm is the default
    assert registry.list_weights("redimnet2-b6-vb2") == [
        "redimnet2-b6-vb2.vb2+vox2_v0-lm",
        "redimnet2-b6-vb2.vb2+vox2_v0-ptn",
    ]
    lm = registry.get_weights("redimnet2-b6-vb2")
    assert lm.url == "https://github.com/PalabraAI/redimnet2/releases/download/v1.0.0/b6-vb2+vox2_v0-lm.pt"
    assert lm.license == "MIT" and lm.commercial_use and lm.eer == (0.17, 0.34, 0.68)
    assert registry.get_weights("redimnet2-b2.ptn").file_name == "b2-vox2-ptn.pt"
    # Both families publish b2-vox2-ptn.pt; their cached copies must not collide.
    assert registry.get_weights("b2.ptn").cache_name != registry.get_weights("redimnet2-b2.ptn").cache_name
    arch = registry.get_architecture("redimnet2-b6")
    assert (arch.parameters, arch.macs_2s) == presets.MEASURED["b6"]
    assert arch.paper_eer == (0.29, 0.52, 0.99)


def test_build_by_name():
    model = redimnet.build("redimnet2-b0", embed_dim=128)
    assert isinstance(model, redimnet.ReDimNet2)
    assert model.config == redimnet.ReDimNet2Config.from_dict({**presets.options("b0"), "embed_dim": 128})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A seeded random redimnet2-b0 published as b0-vox2-lm.pt on a local server, and two recordings."""
    root = tmp_path_factory.mktemp("r2")
    (root / "release").mkdir()
    torch.manual_seed(0)
    model = redimnet.build("redimnet2-b0").eval()
    redimnet.save_checkpoint(model, root / "release" / "b0-vox2-lm.pt")
    rng = np.random.default_rng(0)
    for name in ("a.wav", "b.wav"):
        sf.write(root / name, rng.standard_normal(16000) * 0.1, 16000, subtype="FLOAT")
    server = _Server(root / "release")
    yield root, server, model
    server.close()


@pytest.mark.slow
def test_every_verb_takes_a_redimnet2_model(served, tmp_path, monkeypatch, capsys):
    root, server, model = served
    monkeypatch.setenv("REDIMNET_BASE_URL", server.url)
    monkeypatch.setenv("REDIMNET_CACHE", str(tmp_path / "cache"))
    use = ["--model", "redimnet2-b0", "--device", "cpu"]

    assert cli.main(["embed", str(root / "a.wav"), "-o", str(tmp_path / "emb.npz"), "--no-progress", *use]) == 0
    assert (tmp_path / "cache" / "redimnet2-b0-vox2-lm.pt").is_file()
    stored = np.load(tmp_path / "emb.npz")
    embedding = stored[[k for k in stored.files if stored[k].ndim == 2][0]][0]
    with torch.no_grad():
        expected = model(torch.from_numpy(sf.read(root / "a.wav", dtype="float32")[0])[None])[0].numpy()
    assert np.abs(embedding - expected).max() <= 1e-4 * np.abs(expected).max()

    assert cli.main(["verify", str(root / "a.wav"), str(root / "b.wav"), "--json", *use]) in (0, 1)
    db = str(tmp_path / "speakers.db")
    assert cli.main(["enroll", "alice", str(root / "a.wav"), "--db", db, *use]) == 0
    assert cli.main(["identify", str(root / "a.wav"), "--db", db, "--json", *use]) == 0
    assert "alice" in capsys.readouterr().out
    out = tmp_path / "model.onnx"
    assert cli.main(["export", "--format", "onnx", "-o", str(out), "--model", "redimnet2-b0"]) == 0
    assert out.is_file()
    assert cli.main(["info", "redimnet2-b0"]) == 0
    assert "redimnet2-b0.vox2-lm" in capsys.readouterr().out


def test_torch_hub_entry_takes_the_official_arguments(served, tmp_path):
    from pathlib import Path

    root, server, model = served
    repo = str(Path(__file__).resolve().parents[1])
    loaded = torch.hub.load(
        repo,
        "redimnet2",
        source="local",
        model_name="b0",
        train_type="lm",
        dataset="vox2",
        cache_dir=tmp_path,
        base_url=server.url,
        progress=False,
    )
    assert isinstance(loaded, redimnet.ReDimNet2) and not loaded.training
    wave = torch.randn(1, 16000)
    with torch.no_grad():
        assert torch.equal(loaded(wave), model(wave))
    random = torch.hub.load(repo, "redimnet2", source="local", model_name="b6", dataset="vb2+vox2_v0", pretrained=False)
    assert random.config.agg_gnorm  # the VoxBlink2 release's architecture
