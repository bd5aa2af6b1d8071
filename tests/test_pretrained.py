"""Published weights: table, download through a local HTTP server, cache, checksums, licence warning, torch.hub."""

import hashlib
import http.server
import shutil
import socket
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import redimnet
from redimnet.hub.pretrained import (
    RELEASES,
    NonCommercialLicenseWarning,
    PretrainedError,
    checkpoint_path,
    copy_into_cache,
    download,
    find_release,
    from_pretrained,
    list_pretrained,
)
from redimnet.hub.registry import get_preset

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def b0_file(tmp_path_factory) -> Path:
    """A b0 network with seeded random weights, saved in the release format (stands in for b0-vox2-*.pt)."""
    torch.manual_seed(0)
    return redimnet.save_checkpoint(redimnet.build("b0").eval(), tmp_path_factory.mktemp("b0") / "b0.pt")


class _Server:
    """http.server on 127.0.0.1 serving a folder; counts requests; can cut responses short."""

    def __init__(self, folder: Path):
        self.folder, self.requests, self.truncate = folder, [], set()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                name = self.path.lstrip("/")
                if name in server.truncate:
                    data = (folder / name).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path, b0_file):
    folder = tmp_path / "release"
    folder.mkdir()
    for name in ["b0-vox2-ft_lm.pt", "b0-vox2-ptn.pt", "M-vb2+vox2+cnc-ft_mix.pt", "b2-vox2-ft_lm.pt"]:
        shutil.copyfile(b0_file, folder / name)  # b2's published checksum will not match these bytes
    running = _Server(folder)
    yield running
    running.close()


def _files(folder: Path) -> list:
    """What a cache folder holds, without the download locks."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def _same_model(a, b):
    wave = torch.randn(1, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(a(wave), b(wave))


@pytest.mark.slow
def test_download_cache_and_reuse(tmp_path, server, b0_file):
    cache = tmp_path / "cache"
    model = from_pretrained("b0", "ft_lm", "vox2", cache_dir=cache, base_url=server.url, progress=False)
    _same_model(model, redimnet.load_checkpoint(b0_file))
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == [
        "b0-vox2-ft_lm.pt",
        "b0-vox2-ft_lm.pt.sha256",
    ]
    assert server.requests == ["/b0-vox2-ft_lm.pt"]
    from_pretrained("B0", "ft_lm", "vox2", cache_dir=cache, base_url=server.url, progress=False)
    assert len(server.requests) == 1  # served from the cache


def test_environment_variables(tmp_path, server, monkeypatch):
    monkeypatch.setenv("REDIMNET_BASE_URL", server.url)
    monkeypatch.setenv("REDIMNET_CACHE", str(tmp_path / "env-cache"))
    path = checkpoint_path("b0", "ptn", "vox2", progress=False)
    assert path == tmp_path / "env-cache" / "b0-vox2-ptn.pt" and path.is_file()


def test_default_cache_is_torch_hub_checkpoints(tmp_path, monkeypatch):
    from redimnet.hub.pretrained import default_cache_dir

    monkeypatch.delenv("REDIMNET_CACHE", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert default_cache_dir() == tmp_path / "hub" / "checkpoints"


def test_checksum_mismatch_leaves_nothing(tmp_path, server):
    cache = tmp_path / "cache"
    with pytest.raises(PretrainedError, match="checksum mismatch.*by hand.*b2-vox2-ft_lm.pt"):
        from_pretrained("b2", "ft_lm", "vox2", cache_dir=cache, base_url=server.url, progress=False)
    assert _files(cache) == []


def test_known_checksum_is_accepted(tmp_path, server, b0_file):
    digest = hashlib.sha256(b0_file.read_bytes()).hexdigest()
    target = download(server.url + "b0-vox2-ptn.pt", tmp_path / "x.pt", sha256=digest, progress=False)
    assert target.read_bytes() == b0_file.read_bytes()


def test_missing_file_offline_and_cut_transfer(tmp_path, server):
    cache = tmp_path / "cache"
    (Path(server.folder) / "b1-vox2-ft_lm.pt").unlink(missing_ok=True)
    with pytest.raises(PretrainedError, match="HTTP 404.*copy it to"):
        from_pretrained("b1", "ft_lm", "vox2", cache_dir=cache, base_url=server.url, progress=False)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    with pytest.raises(PretrainedError, match="offline.*by hand"):
        from_pretrained("b0", "ptn", "vox2", cache_dir=cache, base_url=closed, progress=False)
    server.truncate.add("b0-vox2-ptn.pt")
    with pytest.raises(PretrainedError, match="incomplete|interrupted"):
        from_pretrained("b0", "ptn", "vox2", cache_dir=cache, base_url=server.url, progress=False)
    assert _files(cache) == []


def test_damaged_cached_file_with_known_checksum(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "b2-vox2-ft_lm.pt").write_bytes(b"partial")
    with pytest.warns(UserWarning, match="7 bytes"), pytest.raises(PretrainedError, match="Delete .*b2-vox2-ft_lm.pt"):
        from_pretrained("b2", "ft_lm", "vox2", cache_dir=cache, base_url="http://127.0.0.1:9/")


@pytest.mark.slow
def test_non_commercial_models_warn(tmp_path, server):
    with pytest.warns(NonCommercialLicenseWarning, match="CC BY-NC-SA 4.0.*non-commercial"):
        from_pretrained("M", "ft_mix", "vb2+vox2+cnc", cache_dir=tmp_path, base_url=server.url, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonCommercialLicenseWarning)
        from_pretrained("b0", "ft_lm", "vox2", cache_dir=tmp_path, base_url=server.url, progress=False)


def test_release_table():
    assert len([r for r in list_pretrained() if r.architecture.family == "redimnet"]) == 18
    assert len(list_pretrained()) == 18 + 16  # and ReDimNet2's: b0-b6 vox2, b6 vb2+vox2_v0; lm and ptn
    for name in ["b0", "b1", "b2", "b3", "b4", "b5", "b6"]:
        for train in ["ptn", "ft_lm"]:
            assert find_release(name, train, "vox2").license == "MIT"
        assert find_release(name, "ft_lm", "vox2").eer == pytest.approx(get_preset(name).paper_eer, abs=0.011)
    for name in ["M", "S"]:
        assert not find_release(name, "ft_mix", "vb2+vox2+cnc").commercial_use
        assert find_release(name, "ptn", "vb2").license == "CC BY-NC-SA 4.0"
    assert find_release("b2", "ft_lm", "vox2").sha256.startswith("c9b6bb2f")
    assert sum(r.sha256 is not None for r in RELEASES.values()) == 3
    with pytest.raises(PretrainedError, match="no published ReDimNet model 'b9'.*available: b0, b1"):
        find_release("b9", "ft_lm", "vox2")
    with pytest.raises(PretrainedError, match="b2.vb2-ptn is not published.*b2.vox2-ft_lm, b2.vox2-ptn"):
        find_release("b2", "ptn", "vb2")
    assert find_release("S").name == "S.vb2+vox2+cnc-ft_mix" and find_release("b1", "ptn").name == "b1.vox2-ptn"


def test_copy_into_cache(tmp_path, b0_file):
    target = copy_into_cache(b0_file, "b0", "ptn", "vox2", cache_dir=tmp_path)
    assert target == tmp_path / "b0-vox2-ptn.pt" and target.read_bytes() == b0_file.read_bytes()
    with pytest.raises(PretrainedError, match="SHA-256 differs"):
        copy_into_cache(b0_file, "b5", "ft_lm", "vox2", cache_dir=tmp_path)


@pytest.mark.slow
def test_torch_hub_load_local(tmp_path, server, b0_file):
    model = torch.hub.load(
        str(ROOT),
        "ReDimNet",
        model_name="b0",
        train_type="ptn",
        dataset="vox2",
        source="local",
        cache_dir=tmp_path,
        base_url=server.url,
        progress=False,
    )
    assert isinstance(model, redimnet.ReDimNet) and not model.training
    _same_model(model, redimnet.load_checkpoint(b0_file))
    embedder = torch.hub.load(
        str(ROOT),
        "ReDimNetEmbedder",
        model_name="b0",
        train_type="ptn",
        dataset="vox2",
        source="local",
        cache_dir=tmp_path,
        base_url=server.url,
        optimize=False,
    )
    assert embedder.embed(np.random.default_rng(0).standard_normal(4000).astype(np.float32) * 0.1).shape == (192,)


def test_cli_model_argument_downloads(tmp_path, server, monkeypatch):
    import argparse

    from redimnet.cli.models import add_model_arguments, model_from_arguments

    monkeypatch.setenv("REDIMNET_BASE_URL", server.url)
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(["--model", "b0", "--cache-dir", str(tmp_path)])
    assert (args.train_type, args.dataset) == (None, None)  # the architecture's default weights: vox2 ft_lm
    assert isinstance(model_from_arguments(args), redimnet.ReDimNet)
    assert (tmp_path / "b0-vox2-ft_lm.pt").is_file()
    random = model_from_arguments(parser.parse_args(["--model", "b1", "--random-init"]))
    assert random.config.to_dict() == redimnet.build("b1").config.to_dict()
    default = model_from_arguments(parser.parse_args(["--random-init"]))  # the default model's architecture
    assert default.config == redimnet.get_architecture(redimnet.get_weights(redimnet.DEFAULT_WEIGHTS).arch).config


# --------------------------------------------------------------------------------------------
# published files are what they claim


def test_a_file_of_another_architecture_is_refused(tmp_path, server):
    """A b0 file served under the b1 name downloads fine but is not b1: refused, naming the difference."""
    (Path(server.folder) / "b0-vox2-ft_lm.pt").rename(Path(server.folder) / "b1-vox2-ft_lm.pt")
    with pytest.raises(
        PretrainedError, match=r"not the b1 network that b1.vox2-ft_lm is published as: C=10 \(expected 12\)"
    ):
        redimnet.load("b1.vox2-ft_lm", cache_dir=tmp_path, base_url=server.url, progress=False)


@pytest.mark.slow
def test_hash_recorded_and_checked_on_every_load(tmp_path, server, b0_file):
    cache = tmp_path / "cache"
    redimnet.load("b0.ptn", cache_dir=cache, base_url=server.url, progress=False)
    target = cache / "b0-vox2-ptn.pt"
    digest = hashlib.sha256(b0_file.read_bytes()).hexdigest()
    assert (cache / "b0-vox2-ptn.pt.sha256").read_text() == f"{digest}  b0-vox2-ptn.pt\n"
    target.write_bytes(b0_file.read_bytes()[:-100])  # truncated in the cache
    with pytest.warns(UserWarning, match="changed since it was downloaded.*downloading it again"):
        model = redimnet.load("b0.ptn", cache_dir=cache, base_url=server.url, progress=False)
    assert server.requests == ["/b0-vox2-ptn.pt"] * 2 and target.read_bytes() == b0_file.read_bytes()
    _same_model(model, redimnet.load_checkpoint(b0_file))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 1  # one bit flipped, same size
    target.write_bytes(bytes(data))
    with pytest.warns(UserWarning), pytest.raises(PretrainedError, match=f"changed since.*Delete {target}"):
        redimnet.load("b0.ptn", cache_dir=cache, base_url="http://127.0.0.1:9/", progress=False)


def test_file_placed_by_hand_is_recorded_on_first_use(tmp_path, b0_file):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(b0_file, cache / "b0-vox2-ft_lm.pt")
    redimnet.load("b0", cache_dir=cache, base_url="http://127.0.0.1:9/", progress=False)
    recorded = (cache / "b0-vox2-ft_lm.pt.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(b0_file.read_bytes()).hexdigest()


def test_expected_hash_from_the_caller(tmp_path, server, b0_file):
    digest = hashlib.sha256(b0_file.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    with pytest.raises(PretrainedError, match="checksum mismatch.*expected 0{64}"):
        redimnet.load("b0", cache_dir=cache, base_url=server.url, progress=False, sha256="0" * 64)
    assert _files(cache) == []
    redimnet.load("b0", cache_dir=cache, base_url=server.url, progress=False, sha256=digest.upper())
    with pytest.warns(UserWarning, match="expected 0{64}"), pytest.raises(PretrainedError, match="Delete"):
        redimnet.load("b0", cache_dir=cache, base_url="http://127.0.0.1:9/", progress=False, sha256="0" * 64)
    with pytest.raises(PretrainedError, match="64 hexadecimal digits"):
        redimnet.load("b0", cache_dir=cache, sha256="abc")
    with pytest.raises(PretrainedError, match="differs from the published SHA-256 of b2-vox2-ft_lm.pt"):
        redimnet.load("b2", cache_dir=cache, sha256=digest)


def test_cli_sha256_option(tmp_path, server, b0_file, monkeypatch, capsys):
    from redimnet.cli import main

    monkeypatch.setenv("REDIMNET_BASE_URL", server.url)
    audio = tmp_path / "a.wav"
    import soundfile

    soundfile.write(audio, np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1, 16000)
    assert (
        main(
            [
                "verify",
                str(audio),
                str(audio),
                "--model",
                "b0.ptn",
                "--cache-dir",
                str(tmp_path / "c"),
                "--sha256",
                "1" * 64,
            ]
        )
        == 2
    )
    assert "checksum mismatch" in capsys.readouterr().err
    assert main(["verify", str(audio), str(audio), "--checkpoint", str(b0_file), "--sha256", "1" * 64]) == 2
    assert f"{b0_file} has SHA-256" in capsys.readouterr().err


def test_leftover_partial_files_are_removed_by_the_next_download(tmp_path, server):
    cache = tmp_path / "cache"
    cache.mkdir()
    leftover = cache / ".b0-vox2-ft_lm.pt.abc123.partial"  # what a killed download leaves
    leftover.write_bytes(b"half a file")
    other = cache / ".b1-vox2-ft_lm.pt.abc123.partial"  # another file's download: not ours to remove
    other.write_bytes(b"x")
    redimnet.load("b0", cache_dir=cache, base_url=server.url, progress=False)
    assert not leftover.exists() and other.exists()


def test_invalid_cache_folder_is_one_clear_line(tmp_path, server, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(
        PretrainedError,
        match=r"weights cache .*file is not a folder; set the cache_dir argument "
        r"\(--cache-dir on the command line\)",
    ) as error:
        redimnet.load("b0", cache_dir=blocker, base_url=server.url, progress=False)
    assert "\n" not in str(error.value)
    monkeypatch.setenv("REDIMNET_CACHE", str(blocker / "sub"))
    with pytest.raises(PretrainedError, match="cannot be written.*set the environment variable REDIMNET_CACHE"):
        redimnet.load("b0", base_url=server.url, progress=False)


def test_read_only_cache_folder(tmp_path, server, monkeypatch):
    """A folder that refuses new files (simulated: tests may run as root, which ignores permissions)."""
    import redimnet.hub.pretrained as pretrained

    def refuse(folder):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pretrained, "_probe", refuse)
    monkeypatch.setenv("REDIMNET_CACHE", str(tmp_path))
    with pytest.raises(
        PretrainedError,
        match=f"weights cache {tmp_path} cannot be written \\(Permission denied\\); "
        "set the environment variable REDIMNET_CACHE",
    ):
        redimnet.load("b0", base_url=server.url, progress=False)
