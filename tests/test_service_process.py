"""The service as a real process on 127.0.0.1: killed in the middle of enrolments, and bad requests under load.

Each test starts ``redimnet serve`` itself (tiny random-weight model, one
thread), talks to it over loopback only and stops it; every wait is bounded.
"""

import concurrent.futures
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("python_multipart")

import redimnet  # noqa: E402
from redimnet.speakers.stores import open_store  # noqa: E402
from redimnet.testing.synth import synthesize, voice_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "process-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clip(speaker: int, seed: int, seconds: float = 1.5) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(
        buffer,
        synthesize(voice_for(0, speaker), seconds, np.random.default_rng(seed)),
        16000,
        format="WAV",
        subtype="PCM_16",
    )
    return buffer.getvalue()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return redimnet.save_checkpoint(redimnet.build("b0").eval(), tmp_path_factory.mktemp("ckpt") / "b0.pt")


class Server:
    """``redimnet serve`` in a child process, ready when ``/v1/ready`` answers."""

    def __init__(self, checkpoint, db, *options, index_dir=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(
            os.environ,
            REDIMNET_INDEX_DIR=str(index_dir or Path(str(db)).parent),  # a PostgreSQL store's index cache
            REDIMNET_SERVICE_TOKEN=TOKEN,
            OMP_NUM_THREADS="1",
            PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "redimnet",
                "serve",
                "--checkpoint",
                str(checkpoint),
                "--db",
                str(db),
                "--port",
                str(self.port),
                "--threads",
                "1",
                "--max-seconds",
                "4",
                "--overlap-seconds",
                "1",
                *options,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.process.stdout.read().decode()}")
            try:
                if httpx.get(f"{self.url}/v1/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError("the server did not become ready in 120 s")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process.stdout.close()


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_sigkill_during_enrolments_loses_nothing_acknowledged(checkpoint, tmp_path, store, request):
    db = str(tmp_path / "speakers.db") if store == "sqlite" else request.getfixturevalue("postgres_url")
    recordings = [clip(1, 1, seconds=1.0), clip(2, 2, seconds=1.0)]
    server = Server(checkpoint, db, index_dir=tmp_path)
    acknowledged, attempted = {}, set()

    def enrol(index: int):
        name = f"speaker-{index:03d}"
        attempted.add(name)
        files = [("audio", (f"{name}-{i}.wav", data, "audio/wav")) for i, data in enumerate(recordings)]
        try:
            response = httpx.post(
                f"{server.url}/v1/enroll", headers=AUTH, data={"speaker": name}, files=files, timeout=20
            )
        except httpx.HTTPError:
            return  # cut off by the kill: not acknowledged
        if response.status_code == 200:
            acknowledged[name] = response.json()["recordings"]

    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(enrol, i) for i in range(200)]
            deadline = time.monotonic() + 30
            while len(acknowledged) < 6 and time.monotonic() < deadline:
                time.sleep(0.05)
            server.kill()  # enrolments are still arriving and running
            for future in futures:
                future.result(timeout=30)
    finally:
        server.stop()
    assert len(acknowledged) >= 6 and len(attempted) > len(acknowledged)
    assert set(acknowledged.values()) == {2}

    with open_store(db) as database:
        assert database.check()  # SQLite's integrity check, and every count matches its utterances
        stored = {s.name: s.utterances for s in database.speakers()}
    assert set(acknowledged) <= set(stored)
    assert set(stored.values()) == {2}  # nobody half-enrolled: all or nothing
    assert set(stored) <= attempted

    restarted = Server(checkpoint, db, index_dir=tmp_path)  # the service starts again on the same store
    try:
        listed = httpx.get(f"{restarted.url}/v1/speakers", timeout=10).json()["speakers"]
        assert {s["speaker"]: s["recordings"] for s in listed} == stored
        # the speaker index holds exactly the stored speakers: none missing, none stale
        found = httpx.post(
            f"{restarted.url}/v1/identify",
            data={"top": "100"},
            files=[("audio", ("q.wav", recordings[0], "audio/wav"))],
            timeout=20,
        ).json()["matches"]
        assert len(stored) <= 100 and sorted(m["speaker"] for m in found) == sorted(stored)
        response = httpx.post(
            f"{restarted.url}/v1/enroll",
            headers=AUTH,
            data={"speaker": "after-restart"},
            files=[("audio", ("x.wav", recordings[0], "audio/wav"))],
            timeout=20,
        )
        assert response.status_code == 200
    finally:
        restarted.stop()


@pytest.mark.slow
def test_bad_requests_under_load_do_not_disturb_the_others(checkpoint, tmp_path):
    """Two worker processes; bad requests mixed into concurrent good ones."""
    a, b = clip(1, 1), clip(2, 2)
    server = Server(checkpoint, tmp_path / "speakers.db", "--max-upload-mb", "0.2", "--workers", "2")
    try:
        expected = httpx.post(
            f"{server.url}/v1/verify", files=[("audio", ("a.wav", a)), ("audio2", ("b.wav", b))], timeout=20
        ).json()["score"]
        rng = np.random.default_rng(0)
        noise = io.BytesIO()
        soundfile.write(noise, rng.uniform(-0.5, 0.5, 16000 * 10).astype(np.float32), 16000, format="WAV")
        bad = {
            "oversized": dict(files=[("audio", ("big.wav", noise.getvalue()))]),
            "garbage": dict(files=[("audio", ("x.wav", rng.bytes(5000)))]),
            "malformed": dict(
                content=b"--zz\r\nnonsense", headers={"Content-Type": "multipart/form-data; boundary=zz"}
            ),
            "not a form": dict(content=b"{}", headers={"Content-Type": "application/json"}),
            "silent": dict(files=[("audio", ("s.wav", a[:44] + bytes(len(a) - 44)))]),
        }

        def good(_):
            response = httpx.post(
                f"{server.url}/v1/verify", files=[("audio", ("a.wav", a)), ("audio2", ("b.wav", b))], timeout=30
            )
            return response.status_code, response.json().get("score")

        def refused(kind):
            response = httpx.post(f"{server.url}/v1/embed", timeout=30, **bad[kind])
            return kind, response.status_code, response.json()["error"]["code"]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            goods = [pool.submit(good, i) for i in range(16)]
            bads = [pool.submit(refused, kind) for kind in list(bad) * 3]
            good_results = [f.result(timeout=60) for f in goods]
            bad_results = [f.result(timeout=60) for f in bads]
        assert all(status == 200 for status, _ in good_results)
        assert [score for _, score in good_results] == pytest.approx([expected] * 16, abs=1e-4)
        expected_refusals = {
            "oversized": (413, "too_large"),
            "garbage": (422, "bad_audio"),
            "malformed": (400, "bad_form"),
            "not a form": (415, "unsupported_media_type"),
            "silent": (422, "bad_audio"),
        }
        assert sorted(bad_results) == sorted((kind, *expected_refusals[kind]) for kind in list(bad) * 3)
        assert httpx.get(f"{server.url}/v1/ready", timeout=5).status_code == 200

        # two worker processes share the database: an enrolment is seen by every later request
        response = httpx.post(
            f"{server.url}/v1/enroll",
            headers=AUTH,
            data={"speaker": "shared"},
            files=[("audio", ("a.wav", a, "audio/wav"))],
            timeout=30,
        )
        assert response.status_code == 200
        for _ in range(6):
            assert httpx.get(f"{server.url}/v1/speakers", timeout=10).json()["speakers"][0]["speaker"] == "shared"
    finally:
        server.stop()


@pytest.mark.slow
def test_two_servers_on_one_postgres_database_see_each_others_changes(checkpoint, tmp_path, postgres_url):
    """Separate ``redimnet serve`` processes (as on separate machines) share one PostgreSQL database."""
    voices = {name: clip(speaker, speaker) for speaker, name in enumerate(["ann", "bob", "cid"], start=1)}
    queries = voices  # the enrolled recording itself: its speaker scores 1.0, whatever the (random) model
    first = Server(checkpoint, postgres_url, index_dir=tmp_path / "a")
    second = Server(checkpoint, postgres_url, index_dir=tmp_path / "b")

    def enrol(server, name):
        response = httpx.post(
            f"{server.url}/v1/enroll",
            headers=AUTH,
            data={"speaker": name},
            files=[("audio", (f"{name}.wav", voices[name], "audio/wav"))],
            timeout=30,
        )
        assert response.status_code == 200, response.text

    def best(server, name):
        response = httpx.post(
            f"{server.url}/v1/identify", files=[("audio", ("q.wav", queries[name], "audio/wav"))], timeout=30
        )
        assert response.status_code == 200, response.text
        return [m["speaker"] for m in response.json()["matches"]]

    def seen_within(seconds, condition):
        """How long after the change the first request that saw it was sent (its own duration, which
        grows with the machine's load, is not visibility lag)."""
        changed = time.monotonic()
        while True:
            asked = time.monotonic()
            if condition():
                return asked - changed
            assert asked - changed < seconds
            time.sleep(0.05)

    try:
        assert best(first, "ann") == [] and best(second, "ann") == []
        enrol(first, "ann")
        enrol(second, "bob")
        # each server answers the next request with the other's enrolment (no waiting needed; 1 s allowed)
        assert seen_within(1.0, lambda: best(second, "ann")[:1] == ["ann"]) < 1.0
        assert seen_within(1.0, lambda: best(first, "bob")[:1] == ["bob"]) < 1.0
        enrol(second, "cid")
        assert best(first, "cid")[0] == "cid" and sorted(best(first, "cid")) == ["ann", "bob", "cid"]
        assert httpx.delete(f"{second.url}/v1/speakers/ann", headers=AUTH, timeout=10).status_code == 200
        assert seen_within(1.0, lambda: "ann" not in best(first, "ann")) < 1.0
        for server in (first, second):
            listed = httpx.get(f"{server.url}/v1/speakers", timeout=10).json()["speakers"]
            assert [s["speaker"] for s in listed] == ["bob", "cid"]
            info = httpx.get(f"{server.url}/v1/info", timeout=10).json()["database"]
            assert info["kind"] == "postgresql" and info["speakers"] == 2 and info["file"] is None
    finally:
        first.stop()
        second.stop()


@pytest.mark.slow
def test_hostile_clients_get_4xx_and_leave_no_traceback(checkpoint, tmp_path):
    """Hang-ups mid-body, foreign Host headers, a 300-character boundary and racing deletes, on a real server."""
    server = Server(checkpoint, tmp_path / "speakers.db", "--allowed-host", "speakers.example.org")
    try:
        for _ in range(3):  # headers, Content-Length 100000, 3 bytes, then the connection closes
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(
                    f"POST /v1/embed HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                    "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 100000\r\n\r\n--x".encode()
                )
        foreign = httpx.get(f"{server.url}/v1/speakers", headers={"Host": "attacker.example"}, timeout=10)
        assert foreign.status_code == 400 and foreign.json()["error"]["code"] == "bad_host"
        assert foreign.headers["x-content-type-options"] == "nosniff"
        named = httpx.get(f"{server.url}/v1/speakers", headers={"Host": "speakers.example.org:443"}, timeout=10)
        assert named.status_code == 200
        boundary = "q" * 300
        long_boundary = httpx.post(
            f"{server.url}/v1/embed",
            content=f"--{boundary}\r\n".encode(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            timeout=10,
        )
        assert long_boundary.status_code == 400 and "content-security-policy" in long_boundary.headers
        data = clip(1, 1, seconds=1.0)

        def enrol_and_delete(_):
            with httpx.Client(base_url=server.url, timeout=30) as client:
                enrolled = client.post(
                    "/v1/enroll", headers=AUTH, data={"speaker": "one"}, files=[("audio", ("a.wav", data))]
                )
                deleted = client.delete("/v1/speakers/one", headers=AUTH)
                return enrolled.status_code, deleted.status_code, deleted.text

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(enrol_and_delete, range(48)))
        assert {enrolled for enrolled, _, _ in results} == {200}
        assert {deleted for _, deleted, _ in results} <= {200, 404}, results
        assert not any(str(tmp_path) in text for _, _, text in results)
        assert httpx.get(f"{server.url}/v1/ready", timeout=5).status_code == 200
    finally:
        server.process.terminate()
        output = server.process.communicate(timeout=30)[0].decode(errors="replace")
        server.stop()
    assert "Traceback" not in output and "unexpected error" not in output, output[-3000:]
