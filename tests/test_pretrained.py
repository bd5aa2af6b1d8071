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
from conftest import official_file
from redimnet.pretrained import (RELEASES, NonCommercialLicenseWarning, PretrainedError, checkpoint_path,
                                 copy_into_cache, download, find_release, from_pretrained, list_pretrained)
from redimnet.registry import get_preset

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def b0_file() -> Path:
    return official_file("b0.pt")


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
                    self.wfile.write(data[:len(data) // 3])
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


def _same_model(a, b):
    wave = torch.randn(1, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(a(wave), b(wave))


def test_download_cache_and_reuse(tmp_path, server, b0_file):
    cache = tmp_path / "cache"
    model = from_pretrained("b0", "ft_lm", "vox2", cache_dir=cache, base_url=server.url, progress=False)
    _same_model(model, redimnet.load_checkpoint(b0_file))
    assert sorted(p.name for p in cache.iterdir()) == ["b0-vox2-ft_lm.pt"]
    assert server.requests == ["/b0-vox2-ft_lm.pt"]
    from_pretrained("B0", "ft_lm", "vox2", cache_dir=cache, base_url=server.url, progress=False)
    assert len(server.requests) == 1  # served from the cache


def test_environment_variables(tmp_path, server, monkeypatch):
    monkeypatch.setenv("REDIMNET_BASE_URL", server.url)
    monkeypatch.setenv("REDIMNET_CACHE", str(tmp_path / "env-cache"))
    path = checkpoint_path("b0", "ptn", "vox2", progress=False)
    assert path == tmp_path / "env-cache" / "b0-vox2-ptn.pt" and path.is_file()


def test_default_cache_is_torch_hub_checkpoints(tmp_path, monkeypatch):
    from redimnet.pretrained import default_cache_dir

    monkeypatch.delenv("REDIMNET_CACHE", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert default_cache_dir() == tmp_path / "hub" / "checkpoints"


def test_checksum_mismatch_leaves_nothing(tmp_path, server):
    cache = tmp_path / "cache"
    with pytest.raises(PretrainedError, match="checksum mismatch.*by hand.*b2-vox2-ft_lm.pt"):
        from_pretrained("b2", "ft_lm", "vox2", cache_dir=cache, base_url=server.url, progress=False)
    assert list(cache.iterdir()) == []


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
    assert list(cache.iterdir()) == []


def test_damaged_cached_file_with_known_checksum(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "b2-vox2-ft_lm.pt").write_bytes(b"partial")
    with pytest.raises(PretrainedError, match="Delete it"):
        from_pretrained("b2", "ft_lm", "vox2", cache_dir=cache, base_url="http://127.0.0.1:9/")


def test_non_commercial_models_warn(tmp_path, server):
    with pytest.warns(NonCommercialLicenseWarning, match="CC BY-NC-SA 4.0.*non-commercial"):
        from_pretrained("M", "ft_mix", "vb2+vox2+cnc", cache_dir=tmp_path, base_url=server.url, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonCommercialLicenseWarning)
        from_pretrained("b0", "ft_lm", "vox2", cache_dir=tmp_path, base_url=server.url, progress=False)


def test_release_table():
    assert len(list_pretrained()) == 18
    for name in ["b0", "b1", "b2", "b3", "b4", "b5", "b6"]:
        for train in ["ptn", "ft_lm"]:
            assert find_release(name, train, "vox2").license == "MIT"
        assert find_release(name, "ft_lm", "vox2").eer == pytest.approx(get_preset(name).paper_eer, abs=0.011)
    for name in ["M", "S"]:
        assert not find_release(name, "ft_mix", "vb2+vox2+cnc").commercial_use
        assert find_release(name, "ptn", "vb2").license == "CC BY-NC-SA 4.0"
    assert find_release("b2", "ft_lm", "vox2").sha256.startswith("c9b6bb2f")
    assert sum(r.sha256 is not None for r in RELEASES.values()) == 3
    with pytest.raises(PretrainedError, match="no published ReDimNet model 'b9'.*b0 vox2 ptn"):
        find_release("b9", "ft_lm", "vox2")


def test_copy_into_cache(tmp_path, b0_file):
    target = copy_into_cache(b0_file, "b0", "ptn", "vox2", cache_dir=tmp_path)
    assert target == tmp_path / "b0-vox2-ptn.pt" and target.read_bytes() == b0_file.read_bytes()
    with pytest.raises(PretrainedError, match="SHA-256 differs"):
        copy_into_cache(b0_file, "b5", "ft_lm", "vox2", cache_dir=tmp_path)


def test_torch_hub_load_local(tmp_path, server, b0_file):
    model = torch.hub.load(str(ROOT), "ReDimNet", model_name="b0", train_type="ptn", dataset="vox2",
                           source="local", cache_dir=tmp_path, base_url=server.url, progress=False)
    assert isinstance(model, redimnet.ReDimNet) and not model.training
    _same_model(model, redimnet.load_checkpoint(b0_file))
    embedder = torch.hub.load(str(ROOT), "ReDimNetEmbedder", model_name="b0", train_type="ptn", dataset="vox2",
                              source="local", cache_dir=tmp_path, base_url=server.url, optimize=False)
    assert embedder.embed(np.random.default_rng(0).standard_normal(4000).astype(np.float32) * 0.1).shape == (192,)


def test_cli_model_argument_downloads(tmp_path, server, monkeypatch):
    import argparse

    from redimnet.cli.models import add_model_arguments, model_from_arguments

    monkeypatch.setenv("REDIMNET_BASE_URL", server.url)
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(["--model", "b0", "--cache-dir", str(tmp_path)])
    assert args.train_type == "ft_lm" and args.dataset == "vox2"
    assert isinstance(model_from_arguments(args), redimnet.ReDimNet)
    assert (tmp_path / "b0-vox2-ft_lm.pt").is_file()
    random = model_from_arguments(parser.parse_args(["--model", "b1", "--random-init"]))
    assert random.config.to_dict() == redimnet.build("b1").config.to_dict()
