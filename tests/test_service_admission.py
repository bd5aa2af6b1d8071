"""The service under load: admission (503 busy with Retry-After), spooled uploads, and the network's input
capped at one window, with the library's embeddings unchanged."""

import asyncio
import concurrent.futures
import io
import os
import threading
import tracemalloc
import warnings

import numpy as np
import pytest
import soundfile
import torch

pytest.importorskip("starlette")
pytest.importorskip("python_multipart")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

with warnings.catch_warnings():  # newer Starlette prefers httpx2 for its test client; httpx works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from test_service import speech, wav_bytes  # noqa: E402  (the same clips as the service's other tests)

import redimnet  # noqa: E402
from redimnet.models.fingerprint import model_fingerprint  # noqa: E402
from redimnet.service import Admission, Service, ServiceError, ServiceSettings, create_app  # noqa: E402
from redimnet.service import uploads as uploads_module  # noqa: E402
from redimnet.service.admission import SLOT_MEMORY_BYTES, default_max_concurrent  # noqa: E402
from redimnet.service.background import BackgroundServer  # noqa: E402
from redimnet.service.uploads import SPOOL_BYTES, read_form  # noqa: E402

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WINDOW = 4.0  # the test embedder's window (seconds): the most audio the network may see at once


@pytest.fixture(scope="module")
def embedder(one_thread):
    torch.manual_seed(0)
    return redimnet.Embedder(redimnet.build("b0").eval(), device="cpu", max_seconds=WINDOW, overlap_seconds=1.0)


def make_service(embedder, tmp_path, **settings):
    settings = ServiceSettings(db=tmp_path / "speakers.db", token=TOKEN, max_wait=0.05, **settings)
    return Service(embedder, settings, model_fingerprint(embedder.model))


def upload(name, data, field="audio"):
    return (field, (name, data, "application/octet-stream"))


def forwards_of(service):
    """Record the shape of every batch the service's network runs."""
    shapes = []
    forward = service.pipeline.forward

    def recording(batch):
        shapes.append(batch.shape)
        return forward(batch)

    service.pipeline.forward = recording
    return shapes


# --- admission --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_requests_beyond_the_slots_wait_then_get_503_with_retry_after(embedder, tmp_path):
    service = make_service(embedder, tmp_path, max_concurrent=1, max_queue_seconds=0.3)
    opened, release = threading.Event(), threading.Event()
    real_prepare = service.prepare

    def slow_prepare(item):  # the first request holds the only slot until released
        opened.set()
        assert release.wait(60)
        return real_prepare(item)

    service.prepare = slow_prepare
    clip = wav_bytes(speech(1, 1))
    with BackgroundServer(create_app(service)) as server, concurrent.futures.ThreadPoolExecutor(1) as pool:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            first = pool.submit(client.post, "/v1/embed", files=[upload("a.wav", clip)])
            assert opened.wait(60)
            service.prepare = real_prepare
            busy = [
                client.post("/v1/embed", files=[upload("b.wav", clip)]),
                client.post("/v1/identify", files=[upload("b.wav", clip)]),
                client.post("/v1/verify", files=[upload("b.wav", clip), upload("c.wav", clip, "audio2")]),
                client.post("/v1/enroll", headers=AUTH, data={"speaker": "B"}, files=[upload("b.wav", clip)]),
                client.post("/v1/diarize", files=[upload("b.wav", clip)]),
            ]
            info = client.get("/v1/info").json()  # requests without audio are answered meanwhile
            release.set()
            assert first.result(60).status_code == 200
            after = client.post("/v1/embed", files=[upload("b.wav", clip)])
    for response in busy:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["x-content-type-options"] == "nosniff"
        error = response.json()["error"]
        assert error["code"] == "busy" and "waited 0.3 s" in error["message"] and "again in 1 s" in error["message"]
        assert "Traceback" not in response.text
    assert info["batching"]["busy"] == 1 and info["batching"]["refused_busy"] == 5
    assert info["limits"]["max_concurrent"] == 1 and info["limits"]["max_queue_seconds"] == 0.3
    assert after.status_code == 200  # the slot was given back
    assert service.admission.busy == 0


def test_a_waiting_request_gets_the_slot_that_frees_in_time():
    async def scenario():
        admission = Admission(2, wait_seconds=5.0)
        order = []

        async def hold(name, seconds):
            async with admission.slot():
                order.append(f"{name} in")
                await asyncio.sleep(seconds)
            order.append(f"{name} out")

        await asyncio.gather(hold("a", 0.2), hold("b", 0.4), hold("c", 0.0))
        return order, admission

    order, admission = asyncio.run(scenario())
    assert order[:2] == ["a in", "b in"] and order.index("c in") > order.index("a out")  # c waited for a
    assert admission.busy == 0 and admission.refused == 0


def test_a_request_that_waits_too_long_is_refused_and_the_slots_stay_usable():
    async def scenario():
        admission = Admission(1, wait_seconds=0.05)
        async with admission.slot():
            with pytest.raises(ServiceError) as refused:
                async with admission.slot():
                    pass
        async with admission.slot():  # nothing leaked: the slot is free again
            pass
        return admission, refused.value

    admission, error = asyncio.run(scenario())
    assert (error.status, error.code, error.headers) == (503, "busy", {"Retry-After": "1"})
    assert admission.refused == 1 and admission.busy == 0
    with pytest.raises(ValueError):
        Admission(0, 1.0)


def test_default_slots_follow_cores_and_memory():
    plenty = 1024 * SLOT_MEMORY_BYTES
    assert default_max_concurrent(cores=2, available=plenty) == 16  # enough to fill a batch of 16
    assert default_max_concurrent(cores=32, available=plenty) == 128
    assert default_max_concurrent(cores=8, available=3 * SLOT_MEMORY_BYTES) == 3
    assert default_max_concurrent(cores=4, available=SLOT_MEMORY_BYTES // 2) == 1
    assert 1 <= default_max_concurrent() <= max(16, 4 * len(os.sched_getaffinity(0)))


# --- results unchanged, the network's input capped -------------------------------------------------------------
@pytest.mark.slow
def test_long_uploads_embed_as_the_library_embeds_the_file_one_window_at_a_time(embedder, tmp_path):
    service = make_service(embedder, tmp_path)
    shapes = forwards_of(service)
    files = {}
    for name, seconds, rate, fmt in [("long.flac", 9.0, 48000, "FLAC"), ("short.wav", 2.0, 16000, "WAV")]:
        wave = speech(3, 4, seconds)
        if rate != 16000:  # a stereo 48 kHz recording: resampled and mixed down in blocks
            from redimnet.audio import resample

            wave = np.stack([resample(wave, 16000, rate), 0.5 * resample(wave, 16000, rate)], axis=1)
        path = tmp_path / name
        soundfile.write(path, wave, rate, subtype="PCM_16", format=fmt)
        files[name] = path
    with TestClient(create_app(service), base_url="http://localhost") as client:
        answers = {
            name: client.post("/v1/embed", files=[upload(name, path.read_bytes())]) for name, path in files.items()
        }
    for name, path in files.items():
        assert answers[name].status_code == 200, answers[name].text
        np.testing.assert_allclose(
            np.array(answers[name].json()["embedding"]), embedder.embed_file(path), rtol=1e-4, atol=1e-5
        )
    window = int(WINDOW * 16000)
    assert max(shape[0] * shape[1] for shape in shapes) == window  # the 9 s upload went in 4 s windows


@pytest.mark.slow
def test_concurrent_uploads_never_put_more_than_one_window_through_the_network(embedder, tmp_path):
    service = make_service(embedder, tmp_path, max_concurrent=8)
    shapes = forwards_of(service)
    clips = [wav_bytes(speech(1 + i % 3, i, 1.5)) for i in range(8)]
    with BackgroundServer(create_app(service)) as server, concurrent.futures.ThreadPoolExecutor(8) as pool:

        def send(clip):
            with httpx.Client(base_url=server.url, timeout=120) as client:
                return client.post("/v1/embed", files=[upload("clip.wav", clip)])

        answers = list(pool.map(send, clips))
    assert [a.status_code for a in answers] == [200] * 8
    assert max(shape[0] * shape[1] for shape in shapes) <= int(WINDOW * 16000)
    assert max(shape[0] for shape in shapes) == 2  # equal-length clips still share batches, two 1.5 s per 4 s
    for clip, answer in zip(clips, answers):
        wave = soundfile.read(io.BytesIO(clip), dtype="float32")[0]
        np.testing.assert_allclose(
            np.array(answer.json()["embedding"]), embedder.embed(wave, 16000), rtol=1e-4, atol=1e-5
        )


def test_the_warm_up_runs_the_longest_forward_pass_before_the_first_request(embedder, tmp_path):
    service = make_service(embedder, tmp_path)
    shapes = forwards_of(service)
    try:
        service.warm_up()
    finally:
        service.batcher.close()
    assert shapes and max(shape[0] * shape[1] for shape in shapes) == int(WINDOW * 16000)


# --- uploads spooled, never held in memory ----------------------------------------------------------------------
def multipart(parts, boundary="b0undary"):
    body = b""
    for name, filename, data in parts:
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'.encode()
        body += f'; filename="{filename}"'.encode() if filename else b""
        body += b"\r\n\r\n" + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return {"content-type": f"multipart/form-data; boundary={boundary}"}, body


def test_an_upload_is_spooled_as_it_arrives_not_held_in_memory():
    data = np.random.default_rng(0).integers(0, 256, 6_000_000, dtype=np.uint8).tobytes()
    headers, body = multipart([("speaker", None, "Zoë".encode()), ("audio", "x.wav", data)])

    async def chunks():
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    del data
    tracemalloc.start()
    try:
        form = asyncio.run(read_form(headers, chunks(), max_bytes=20_000_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # a 6 MB file went through chunk by chunk
    with form:
        [spooled] = form.files
        assert form.fields == {"speaker": "Zoë"} and spooled.size == 6_000_000 > SPOOL_BYTES
        assert spooled.read() == body[body.index(b"\r\n\r\n", body.index(b"x.wav")) + 4 : -len("\r\n--b0undary--\r\n")]
    assert spooled.file.closed


def test_every_spooled_file_is_closed_once_answered(embedder, tmp_path, monkeypatch):
    spooled = []
    spool = uploads_module._spool

    def recording_spool():
        spooled.append(spool())
        return spooled[-1]

    monkeypatch.setattr(uploads_module, "_spool", recording_spool)
    service = make_service(embedder, tmp_path)
    clip = wav_bytes(speech(1, 1))
    with TestClient(create_app(service), base_url="http://localhost", raise_server_exceptions=False) as client:
        statuses = [
            client.post("/v1/embed", files=[upload("a.wav", clip)]).status_code,
            client.post("/v1/embed", files=[upload("bad.wav", b"not audio at all")]).status_code,
            client.post("/v1/embed", files=[upload("a.wav", clip), upload("b.wav", clip)]).status_code,
            client.post("/v1/enroll", headers=AUTH, files=[upload("a.wav", clip)]).status_code,  # no speaker
            client.post("/v1/diarize", files=[upload("a.wav", clip)]).status_code,
        ]
    assert statuses == [200, 422, 400, 400, 200]
    assert len(spooled) == 6 and all(f.closed for f in spooled)


def test_serve_refuses_admission_options_that_cannot_work(capsys):
    from redimnet import cli

    assert cli.main(["serve", "--max-concurrent", "0"]) == 2
    assert "--max-concurrent must be at least 1, got 0" in capsys.readouterr().err
    assert cli.main(["serve", "--max-queue-seconds", "-1"]) == 2
    assert "--max-queue-seconds must be from 0 to 3600" in capsys.readouterr().err
    help_text = cli.build_parser(["serve"])._subparsers._group_actions[0].choices["serve"].format_help()
    assert "(default 20)" in " ".join(help_text.split())  # the service's window, not embed's 60 s
