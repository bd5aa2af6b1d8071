"""The HTTP service in process (Starlette's test client): every endpoint, the token rules, bad uploads, limits."""

import io
import json
import warnings

import numpy as np
import pytest
import soundfile
import torch

pytest.importorskip("starlette")
pytest.importorskip("python_multipart")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # newer Starlette prefers httpx2 for its test client; httpx works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

import redimnet  # noqa: E402
from redimnet.models.fingerprint import model_fingerprint  # noqa: E402
from redimnet.service import Service, ServiceSettings, create_app  # noqa: E402
from redimnet.service.app import ROUTES  # noqa: E402
from redimnet.speakers.sql import EmptyStoreError  # noqa: E402
from redimnet.speakers.sqlite import SpeakerDatabase
from redimnet.testing.synth import synthesize, voice_for  # noqa: E402

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def wav_bytes(wave, rate=16000, subtype="PCM_16", fmt="WAV"):
    buffer = io.BytesIO()
    soundfile.write(buffer, wave, rate, subtype=subtype, format=fmt)
    return buffer.getvalue()


def speech(speaker, seed, seconds=2.0):
    return synthesize(voice_for(0, speaker), seconds, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def embedder(one_thread):
    torch.manual_seed(0)
    return redimnet.Embedder(
        redimnet.build("b0").eval(), device="cpu", max_seconds=4.0, overlap_seconds=1.0, batch_size=8
    )


@pytest.fixture(scope="module")
def clips():
    return {
        "a1": wav_bytes(speech(1, 1)),
        "a2": wav_bytes(speech(1, 2)),
        "b1": wav_bytes(speech(2, 3)),
        "a1_flac": wav_bytes(speech(1, 1), fmt="FLAC"),
        "long": wav_bytes(speech(3, 4, seconds=9.0)),
    }


def make_client(embedder, tmp_path, token=TOKEN, scoring=None, **limits):
    settings = ServiceSettings(db=tmp_path / "speakers.db", token=token, model_name="b0-test", max_wait=0.002, **limits)
    service = Service(embedder, settings, model_fingerprint(embedder.model), scoring)
    return TestClient(create_app(service), base_url="http://localhost", raise_server_exceptions=False)


@pytest.fixture
def client(embedder, tmp_path):
    with make_client(embedder, tmp_path) as client:
        yield client


def files(**named):
    return [(field, (name, data, "application/octet-stream")) for field, (name, data) in named.items()]


def error_of(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert "Traceback" not in response.text
    return body["error"]["message"]


# --- reading endpoints ----------------------------------------------------------------------------------------
def test_health_ready_info_and_schema(client, embedder):
    assert client.get("/v1/health").json() == {"status": "ok"}
    assert client.get("/v1/ready").json() == {"status": "ready"}
    info = client.get("/v1/info").json()
    assert info["model"]["fingerprint"] == model_fingerprint(embedder.model)
    assert info["model"]["embedding_dim"] == embedder.embed_dim
    assert info["database"]["speakers"] == 0 and info["writes_enabled"] is True
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in schema["paths"].items() for method in ops}
    served = {(path.replace("{name:path}", "{name}"), method) for path, _, methods in ROUTES for method in methods}
    assert served == documented


def test_embed_matches_the_library(client, embedder, clips):
    response = client.post("/v1/embed", files=files(audio=("a1.wav", clips["a1"])))
    assert response.status_code == 200, response.text
    body = response.json()
    expected = embedder.embed(soundfile.read(io.BytesIO(clips["a1"]), dtype="float32")[0], 16000)
    np.testing.assert_allclose(np.array(body["embedding"]), expected, rtol=1e-4, atol=1e-5)
    assert body["dim"] == expected.shape[0] and body["seconds"] == pytest.approx(2.0, abs=1e-3)


def test_verify_two_uploads(client, embedder, clips):
    same = client.post("/v1/verify", files=files(audio=("a1.wav", clips["a1"]), audio2=("a1.flac", clips["a1_flac"])))
    assert same.status_code == 200, same.text
    assert same.json()["score"] == pytest.approx(1.0, abs=1e-3)  # FLAC decodes to the same samples as the WAV
    other = client.post("/v1/verify", files=files(audio=("a1.wav", clips["a1"]), audio2=("b1.wav", clips["b1"])))
    waves = [soundfile.read(io.BytesIO(clips[k]), dtype="float32")[0] for k in ("a1", "b1")]
    expected = redimnet.embedding.similarity.cosine_score(*[embedder.embed(w, 16000) for w in waves])
    assert other.json() == {"score": pytest.approx(expected, abs=1e-4), "scoring": "cosine"}


def test_long_upload_is_windowed_like_the_library(client, embedder, clips):
    response = client.post("/v1/embed", files=files(audio=("long.wav", clips["long"])))
    wave = soundfile.read(io.BytesIO(clips["long"]), dtype="float32")[0]
    np.testing.assert_allclose(
        np.array(response.json()["embedding"]), embedder.embed(wave, 16000), rtol=1e-4, atol=1e-5
    )


# --- the database through the API ------------------------------------------------------------------------
def test_enroll_identify_verify_list_delete(client, embedder, clips, tmp_path):
    response = client.post(
        "/v1/enroll",
        headers=AUTH,
        data={"speaker": "Alice"},
        files=[("audio", ("a1.wav", clips["a1"], "audio/wav")), ("audio", ("a2.wav", clips["a2"], "audio/wav"))],
    )
    assert response.json() == {"speaker": "Alice", "added": 2, "recordings": 2}, response.text
    assert (
        client.post(
            "/v1/enroll", headers=AUTH, data={"speaker": "Bob"}, files=files(audio=("b1.wav", clips["b1"]))
        ).status_code
        == 200
    )
    listed = client.get("/v1/speakers").json()["speakers"]
    assert [(s["speaker"], s["recordings"]) for s in listed] == [("Alice", 2), ("Bob", 1)]

    identified = client.post("/v1/identify", data={"top": "2"}, files=files(audio=("b1.wav", clips["b1"]))).json()
    with SpeakerDatabase(tmp_path / "speakers.db") as db:  # the library's own ranking is the oracle
        wave = soundfile.read(io.BytesIO(clips["b1"]), dtype="float32")[0]
        expected = db.identify(embedder.embed(wave, 16000), top=2)
    assert [m["speaker"] for m in identified["matches"]] == [name for name, _ in expected]
    assert [m["score"] for m in identified["matches"]] == pytest.approx([s for _, s in expected], abs=1e-4)

    against = client.post("/v1/verify", data={"speaker": "Bob"}, files=files(audio=("b1.wav", clips["b1"]))).json()
    assert against["speaker"] == "Bob" and against["score"] == pytest.approx(1.0, abs=1e-3)
    missing = client.post("/v1/verify", data={"speaker": "Carol"}, files=files(audio=("b1.wav", clips["b1"])))
    assert "Carol" in error_of(missing, 404, "unknown_speaker")

    assert client.delete("/v1/speakers/Bob", headers=AUTH).json() == {"speaker": "Bob", "removed_recordings": 1}
    assert [s["speaker"] for s in client.get("/v1/speakers").json()["speakers"]] == ["Alice"]
    error_of(client.delete("/v1/speakers/Bob", headers=AUTH), 404, "unknown_speaker")


def test_speakers_list_comes_in_pages(client, tmp_path):
    names = [f"spk{i:02d}" for i in range(5)]
    with SpeakerDatabase(tmp_path / "speakers.db") as db:  # the service's own store
        for i, name in enumerate(names):
            db.enroll(name, np.ones((1, 8)) + i, ["x"])
    first = client.get("/v1/speakers", params={"limit": 2}).json()
    assert [s["speaker"] for s in first["speakers"]] == names[:2] and first["next_cursor"] == "spk01"
    second = client.get("/v1/speakers", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [s["speaker"] for s in second["speakers"]] == names[2:4] and second["next_cursor"] == "spk03"
    last = client.get("/v1/speakers", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [s["speaker"] for s in last["speakers"]] == names[4:] and "next_cursor" not in last
    exact = client.get("/v1/speakers", params={"limit": 5}).json()  # exactly one full page: nothing follows
    assert len(exact["speakers"]) == 5 and "next_cursor" not in exact
    assert [s["speaker"] for s in client.get("/v1/speakers").json()["speakers"]] == names  # default page: 1000
    for bad in ("0", "10001", "many", "-3"):
        assert "'limit' must be a whole number" in error_of(client.get(f"/v1/speakers?limit={bad}"), 400, "bad_field")
    error_of(client.get("/v1/speakers", params={"cursor": "x" * 2000}), 400, "bad_field")


def test_identify_with_nobody_enrolled_is_empty(client, clips):
    response = client.post("/v1/identify", files=files(audio=("a1.wav", clips["a1"])))
    assert response.json() == {"matches": [], "scoring": "cosine"}


def test_names_with_slashes_and_unicode_round_trip(client, clips):
    name = "Zoë / team 2"
    assert (
        client.post(
            "/v1/enroll", headers=AUTH, data={"speaker": name}, files=files(audio=("a1.wav", clips["a1"]))
        ).status_code
        == 200
    )
    assert client.delete("/v1/speakers/Zo%C3%AB%20%2F%20team%202", headers=AUTH).json()["speaker"] == name


# --- the token ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-0123456789"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": "Bearer"}, 401),
    ],
)
def test_writes_need_the_token(client, clips, tmp_path, headers, status):
    response = client.post(
        "/v1/enroll", headers=headers, data={"speaker": "Mallory"}, files=files(audio=("a1.wav", clips["a1"]))
    )
    error_of(response, status, "unauthorized")
    error_of(client.delete("/v1/speakers/Mallory", headers=headers), status, "unauthorized")
    assert client.get("/v1/speakers").json() == {"speakers": []}


def test_without_a_token_writes_are_disabled(embedder, tmp_path, clips):
    with make_client(embedder, tmp_path, token=None) as client:
        response = client.post(
            "/v1/enroll", headers=AUTH, data={"speaker": "A"}, files=files(audio=("a1.wav", clips["a1"]))
        )
        assert "token" in error_of(response, 403, "writes_disabled")
        assert client.get("/v1/info").json()["writes_enabled"] is False


def test_token_loading_and_the_loopback_rule(tmp_path, monkeypatch):
    from redimnet.errors import InvalidArgumentError
    from redimnet.service.auth import is_loopback, load_token

    monkeypatch.delenv("REDIMNET_SERVICE_TOKEN", raising=False)
    assert load_token() is None
    monkeypatch.setenv("REDIMNET_SERVICE_TOKEN", TOKEN)
    assert load_token() == TOKEN
    (tmp_path / "token").write_text("file-token-0123456789abcdef\nignored\n")
    assert load_token(str(tmp_path / "token")) == "file-token-0123456789abcdef"
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(InvalidArgumentError, match="at least 16"):
        load_token(str(tmp_path / "short"))
    with pytest.raises(InvalidArgumentError, match="cannot read the token file"):
        load_token(str(tmp_path / "absent"))
    assert [is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost")] == [True] * 5
    assert [is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.4", "example.org")] == [False] * 4


# --- bad input -----------------------------------------------------------------------------------------------
def test_bad_uploads_are_4xx_with_the_file_named(client, clips):
    cases = {
        "empty.wav": (b"", "empty"),
        "text.wav": (
            b"this is not audio at all" * 20,
            "not a readable audio file or corrupt/truncated (Error opening: ",
        ),
        "truncated.wav": (clips["a1"][:30], "not a readable audio file"),
        "silence.wav": (wav_bytes(np.zeros(32000, dtype=np.float32)), "no speech signal"),
        "short.wav": (wav_bytes(np.random.default_rng(0).uniform(-0.3, 0.3, 80).astype(np.float32)), "too short"),
    }
    for name, (data, why) in cases.items():
        message = error_of(client.post("/v1/embed", files=files(audio=(name, data))), 422, "bad_audio")
        assert name in message and why in message, message
    message = error_of(
        client.post("/v1/verify", files=files(audio=("a1.wav", clips["a1"]), audio2=("bad.wav", b"RIFF0000WAVEjunk"))),
        422,
        "bad_audio",
    )
    assert "bad.wav" in message


def test_malformed_requests_are_refused(client, clips):
    assert "multipart" in error_of(client.post("/v1/embed", content=b"raw"), 415, "unsupported_media_type")
    error_of(client.post("/v1/embed", files=files(other=("x.wav", clips["a1"]))), 400, "missing_file")
    broken = client.post(
        "/v1/embed",
        content=b"--xyz\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--xyz--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "bad_form"
    cut = client.post(
        "/v1/embed",
        content=b'--xyz\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n' + clips["a1"][:1000],
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert "closing boundary" in error_of(cut, 400, "bad_form")
    error_of(client.post("/v1/verify", files=files(audio=("a1.wav", clips["a1"]))), 400, "bad_form")
    error_of(
        client.post("/v1/identify", data={"top": "0"}, files=files(audio=("a1.wav", clips["a1"]))), 400, "bad_field"
    )
    error_of(client.get("/v1/nothing"), 404, "not_found")
    error_of(client.get("/v1/embed"), 405, "method_not_allowed")


@pytest.mark.parametrize("name", ["", "   ", "bad\x1b[31mname", "x" * 257])
def test_bad_speaker_names_are_refused(client, clips, name):
    response = client.post(
        "/v1/enroll", headers=AUTH, data={"speaker": name}, files=files(audio=("a.wav", clips["a1"]))
    )
    error_of(response, 400, "bad_name")
    assert client.get("/v1/speakers").json() == {"speakers": []}


@pytest.mark.parametrize("name", ["Al\u200bice", "\ufeffBob", "Eve\U000e0041", "Ma\u202eX", "A\u00a0B"])
def test_invisible_characters_in_names_are_refused(client, clips, name):
    response = client.post(
        "/v1/enroll", headers=AUTH, data={"speaker": name}, files=files(audio=("a.wav", clips["a1"]))
    )
    assert "U+" in error_of(response, 400, "bad_name")
    assert client.get("/v1/speakers").json() == {"speakers": []}


def test_composed_and_decomposed_names_are_one_speaker(client, clips, tmp_path):
    for name in ("Jos\u00e9", "Jose\u0301"):
        response = client.post(
            "/v1/enroll", headers=AUTH, data={"speaker": name}, files=files(audio=("a.wav", clips["a1"]))
        )
        assert response.json()["speaker"] == "Jos\u00e9", response.text
    assert [(s["speaker"], s["recordings"]) for s in client.get("/v1/speakers").json()["speakers"]] == [
        ("Jos\u00e9", 2)
    ]
    verified = client.post("/v1/verify", data={"speaker": "Jose\u0301"}, files=files(audio=("a.wav", clips["a1"])))
    assert verified.json()["speaker"] == "Jos\u00e9"
    assert client.delete("/v1/speakers/Jose%CC%81", headers=AUTH).json()["removed_recordings"] == 2


def test_a_name_stored_before_the_policy_can_still_be_removed(client, clips, tmp_path):
    import sqlite3

    client.post("/v1/enroll", headers=AUTH, data={"speaker": "Mallory"}, files=files(audio=("a.wav", clips["a1"])))
    with sqlite3.connect(str(tmp_path / "speakers.db")) as connection:  # as an older redimnet stored it
        connection.execute("UPDATE speakers SET name='Mal\u200blory'")
    assert [s["speaker"] for s in client.get("/v1/speakers").json()["speakers"]] == ["Mal\u200blory"]
    error_of(client.delete("/v1/speakers/Ma%E2%80%8Bllory", headers=AUTH), 400, "bad_name")  # not stored: refused
    response = client.delete("/v1/speakers/Mal%E2%80%8Blory", headers=AUTH)
    assert response.json() == {"speaker": "Mal\u200blory", "removed_recordings": 1}, response.text


def test_enrolment_is_all_or_nothing(client, clips):
    response = client.post(
        "/v1/enroll",
        headers=AUTH,
        data={"speaker": "Alice"},
        files=[("audio", ("a1.wav", clips["a1"], "audio/wav")), ("audio", ("broken.wav", b"garbage", "audio/wav"))],
    )
    assert "broken.wav" in error_of(response, 422, "bad_audio")
    assert client.get("/v1/speakers").json() == {"speakers": []}


def test_size_duration_and_count_limits(embedder, tmp_path, clips):
    with make_client(embedder, tmp_path, max_upload_bytes=100_000, max_audio_seconds=3.0, max_files=2) as client:
        big = client.post("/v1/embed", files=files(audio=("big.wav", clips["long"])))
        assert "0.1 MB" in error_of(big, 413, "too_large")
        long = wav_bytes(speech(3, 4, seconds=2.0), rate=8000)  # played at 8 kHz: 4 s in 64 kB
        message = error_of(client.post("/v1/embed", files=files(audio=("long.wav", long))), 422, "bad_audio")
        assert "4.0 s long" in message and "at most 3 s" in message
        small = wav_bytes(speech(1, 1, seconds=1.0), rate=8000)
        response = client.post(
            "/v1/enroll",
            headers=AUTH,
            data={"speaker": "A"},
            files=[("audio", (f"{i}.wav", small, "audio/wav")) for i in range(3)],
        )
        error_of(response, 400, "too_many_files")


def test_a_decompression_bomb_is_refused_from_its_header(client, monkeypatch):
    # 8 channels at 192 kHz: 30 s decode to 46 million samples from a FLAC of a few kB
    buffer = io.BytesIO()
    with soundfile.SoundFile(buffer, "w", 192000, 8, subtype="PCM_16", format="FLAC") as handle:
        block = np.full((192000, 8), 0.25, np.float32)
        for _ in range(30):
            handle.write(block)
    data = buffer.getvalue()
    assert len(data) < 100_000
    monkeypatch.setattr(soundfile.SoundFile, "read", lambda *a, **k: pytest.fail("the bomb was decoded"))
    message = error_of(client.post("/v1/embed", files=files(audio=("bomb.flac", data))), 422, "bad_audio")
    assert "'bomb.flac': the header declares 5760000 frames x 8 channels at 192000 Hz" in message
    assert "at most 1.15e+07 are accepted" in message
    assert client.get("/v1/info").json()["limits"]["max_decoded_samples"] == 11_520_000


def test_one_sample_policy_for_every_endpoint(client, clips):
    wave = speech(1, 9, seconds=3.0)
    wave[8000] = 3e38  # finite in float32, but no audio
    data = wav_bytes(wave, subtype="FLOAT")
    for path, extra in (
        ("/v1/embed", {}),
        ("/v1/identify", {}),
        ("/v1/diarize", {}),
        ("/v1/verify", {"audio2": ("a1.wav", clips["a1"])}),
    ):
        response = client.post(path, files=files(audio=("loud.wav", data), **extra))
        message = error_of(response, 422, "bad_audio")
        assert "'loud.wav': 1 sample(s) are larger than 2.15e+09 in magnitude" in message, path


def test_a_chunked_body_without_length_is_cut_off(embedder, tmp_path, clips):
    with make_client(embedder, tmp_path, max_upload_bytes=50_000) as client:
        boundary = "b0undary"
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="x.wav"\r\n\r\n').encode()

        def body():  # a generator: sent without Content-Length
            yield head
            for _ in range(20):
                yield b"\0" * 10_000

        response = client.post(
            "/v1/embed", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        error_of(response, 413, "too_large")


SECURITY_HEADERS = ("x-content-type-options", "content-security-policy", "x-frame-options", "referrer-policy")


def has_security_headers(response) -> bool:
    return response.headers.get("x-content-type-options") == "nosniff" and all(
        name in response.headers for name in SECURITY_HEADERS
    )


def test_a_long_multipart_boundary_is_a_clear_400(client, clips):
    boundary = "b" * 300
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'.encode()
        + clips["a1"]
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/v1/embed", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert "boundary is 300 characters long; at most 70" in error_of(response, 400, "bad_form")
    assert has_security_headers(response)


def test_every_response_carries_the_security_headers(client, clips, monkeypatch):
    responses = [
        client.get("/v1/health"),
        client.get("/v1/nothing"),
        client.get("/v1/embed"),
        client.post("/v1/embed", content=b"raw"),
        client.post("/v1/enroll", data={"speaker": "A"}, files=files(audio=("a.wav", clips["a1"]))),
        client.get("/v1/health", headers={"Host": "attacker.example"}),
    ]
    service = client.app.state.service
    monkeypatch.setattr(service, "prepare", lambda upload: (_ for _ in ()).throw(ZeroDivisionError("secret detail")))
    responses.append(client.post("/v1/embed", files=files(audio=("a1.wav", clips["a1"]))))
    assert [r.status_code for r in responses] == [200, 404, 405, 415, 401, 400, 500]
    assert all(has_security_headers(r) for r in responses), [r.headers for r in responses]


def test_a_client_that_hangs_up_is_one_info_line(client, caplog):
    """Content-Length 100000, 3 bytes, then the connection closes (no token needed)."""
    import asyncio
    import logging

    app = client.app
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/embed",
        "raw_path": b"/v1/embed",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"multipart/form-data; boundary=xyz"),
            (b"content-length", b"100000"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "app": app,
    }
    messages = [
        {"type": "http.request", "body": b"--x", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        pass

    with caplog.at_level(logging.DEBUG, logger="redimnet.service"):
        asyncio.run(app(scope, receive, send))
    records = [r for r in caplog.records if r.name.startswith("redimnet")]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelno == logging.INFO and records[0].exc_info is None
    assert "client disconnected" in records[0].getMessage() and "/v1/embed" in records[0].getMessage()


def test_a_speaker_removed_meanwhile_is_404_not_a_database_error(client, clips, monkeypatch, tmp_path):
    assert (
        client.post(
            "/v1/enroll", headers=AUTH, data={"speaker": "Dora"}, files=files(audio=("a.wav", clips["a1"]))
        ).status_code
        == 200
    )
    original = SpeakerDatabase.remove

    def raced(self, name):  # another client removes the speaker between the request's check and its delete
        with SpeakerDatabase(tmp_path / "speakers.db") as other:
            original(other, name)
        return original(self, name)

    monkeypatch.setattr(SpeakerDatabase, "remove", raced)
    response = client.delete("/v1/speakers/Dora", headers=AUTH)
    assert "no speaker named 'Dora' is enrolled" in error_of(response, 404, "unknown_speaker")
    assert str(tmp_path) not in response.text


@pytest.mark.slow
def test_racing_enrolments_and_deletes_of_one_name(client, clips):
    import concurrent.futures

    def enrol_then_delete(index):
        enrolled = client.post(
            "/v1/enroll", headers=AUTH, data={"speaker": "Eve"}, files=files(audio=("a.wav", clips["a1"]))
        )
        deleted = client.delete("/v1/speakers/Eve", headers=AUTH)
        return enrolled.status_code, deleted.status_code, deleted.json()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(enrol_then_delete, range(48)))
    assert {enrolled for enrolled, _, _ in results} == {200}
    assert {deleted for _, deleted, _ in results} <= {200, 404}, results
    assert all(body["error"]["code"] == "unknown_speaker" for _, status, body in results if status == 404)


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1", "127.0.0.1:8000", "[::1]", "[::1]:8000"])
def test_loopback_hosts_are_answered(client, host):
    assert client.get("/v1/speakers", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:8000", "localhost.attacker.example", "127.0.0.1.nip.io", "a b"]
)
def test_other_hosts_are_refused_before_routing(client, clips, host):
    message = error_of(client.get("/v1/speakers", headers={"Host": host}), 400, "bad_host")
    assert "--allowed-host" in message
    response = client.post(
        "/v1/enroll", headers={**AUTH, "Host": host}, data={"speaker": "M"}, files=files(audio=("a.wav", clips["a1"]))
    )
    error_of(response, 400, "bad_host")
    error_of(client.get("/v1/nothing/at/all", headers={"Host": host}), 400, "bad_host")  # not 404: before routing
    assert client.get("/v1/speakers").json() == {"speakers": []}


def test_allowed_hosts_can_be_added(embedder, tmp_path):
    with make_client(embedder, tmp_path, allowed_hosts=("speakers.example.org", "10.1.2.3")) as client:
        for host in ("speakers.example.org", "Speakers.Example.org:443", "10.1.2.3:8000", "localhost"):
            assert client.get("/v1/health", headers={"Host": host}).status_code == 200, host
        error_of(client.get("/v1/health", headers={"Host": "other.example.org"}), 400, "bad_host")
    with make_client(embedder, tmp_path, allowed_hosts=("*",)) as client:
        assert client.get("/v1/health", headers={"Host": "anything.example"}).status_code == 200


def test_database_of_another_model_is_refused(client, clips, tmp_path):
    other = redimnet.build("b0")
    with SpeakerDatabase(tmp_path / "speakers.db") as db:
        db.enroll("Old", np.ones((1, 192), dtype=np.float32), ["x"], fingerprint=model_fingerprint(other))
    response = client.post("/v1/identify", files=files(audio=("a1.wav", clips["a1"])))
    message = error_of(response, 409, "database")
    assert "speakers.db was built with another model" in message
    assert str(tmp_path) not in response.text  # no path of the server's in any response


def test_unexpected_failure_is_a_generic_500(client, clips, monkeypatch):
    service = client.app.state.service
    monkeypatch.setattr(service, "prepare", lambda upload: (_ for _ in ()).throw(ZeroDivisionError("secret detail")))
    response = client.post("/v1/embed", files=files(audio=("a1.wav", clips["a1"])))
    message = error_of(response, 500, "internal")
    assert "secret" not in response.text and "server's log" in message


# --- the page -------------------------------------------------------------------------------------------------
def test_page_and_its_files_are_served_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200 and f'"{asset}"' in page.text
    text = page.text + client.get("/static/app.js").text
    assert "http://" not in text and "https://" not in text  # no CDN, nothing from elsewhere
    assert "innerHTML" not in text
    error_of(client.get("/static/../service.py"), 404, "not_found")


# --- calibrated decisions reuse the CLI's scoring pieces -----------------------------------------------------
def test_calibrated_verify_and_identify(embedder, tmp_path, clips):
    from redimnet.evaluation.calibration import fit_calibration
    from redimnet.speakers.scorer import Scorer as Scoring

    rng = np.random.default_rng(0)
    # the two classes overlap, as real trials do (separable ones make the calibration warn)
    scores = np.concatenate([rng.normal(0.6, 0.15, 200), rng.normal(0.2, 0.15, 200)])
    labels = np.concatenate([np.ones(200), np.zeros(200)])
    calibration = fit_calibration(scores, labels)
    scoring = Scoring(None, calibration, prior=0.5, far=None)
    with make_client(embedder, tmp_path, scoring=scoring) as client:
        body = client.post(
            "/v1/verify", files=files(audio=("a1.wav", clips["a1"]), audio2=("a1.flac", clips["a1_flac"]))
        ).json()
        decision = calibration.decide(float(calibration.llr(np.array([body["score"]]))[0]), 0.5, None)
        assert body["decision"] == "accept" and body["llr"] == pytest.approx(decision.llr)
        client.post("/v1/enroll", headers=AUTH, data={"speaker": "A"}, files=files(audio=("a.wav", clips["a1"])))
        match = client.post("/v1/identify", files=files(audio=("a.wav", clips["a1"]))).json()["matches"][0]
        assert match["speaker"] == "A" and match["decision"] == "accept" and "posterior" in match
        assert client.get("/v1/info").json()["scoring"]["calibrated"] is True


@pytest.mark.slow
def test_concurrent_requests_share_batches(client, clips):
    import concurrent.futures

    def one(_):
        return client.post("/v1/embed", files=files(audio=("a1.wav", clips["a1"]))).json()["embedding"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert all(np.allclose(r, results[0], atol=1e-5) for r in results)
    batching = client.get("/v1/info").json()["batching"]
    assert batching["waveforms"] >= 16 and batching["largest_batch"] > 1, json.dumps(batching)


# --- the command line -------------------------------------------------------------------------------------------
def test_serve_refuses_a_public_address_without_a_token(tmp_path, monkeypatch, capsys):
    from redimnet.cli import main

    monkeypatch.setenv("REDIMNET_SERVICE_TOKEN", "")
    status = main(["serve", "--model", "b0", "--random-init", "--host", "0.0.0.0", "--db", str(tmp_path / "s.db")])
    assert status == 2
    assert "refusing to listen on 0.0.0.0 without a write token" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()


def test_serve_without_the_extra_names_it(tmp_path, monkeypatch, capsys):
    import sys

    from redimnet.cli import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve", "--model", "b0", "--random-init", "--db", str(tmp_path / "s.db")]) == 2
    assert 'pip install "redimnet[serve]"' in capsys.readouterr().err


# --- diarization -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_diarize_segments_and_enrolled_names(client, tmp_path, clips):
    from redimnet.testing.synth import generate_conversation

    path = tmp_path / "conversation.wav"
    generate_conversation(path, speakers=2, seconds=16.0, seed=1)
    data = path.read_bytes()
    body = client.post("/v1/diarize", data={"max_speakers": "3"}, files=files(audio=("conv.wav", data))).json()
    assert body["duration"] == pytest.approx(soundfile.info(str(path)).duration, abs=1e-3)
    segments = body["segments"]
    assert segments and all(0 <= s["start"] < s["end"] <= body["duration"] + 1e-3 for s in segments)
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)
    assert set(body["speakers"]) == {s["speaker"] for s in segments} and 1 <= len(body["speakers"]) <= 3

    # enrol the first speaker with a piece of the recording: their cluster is then named after them
    wave = soundfile.read(str(path), dtype="float32")[0]
    first = segments[0]
    piece = wav_bytes(wave[int(first["start"] * 16000) : int(first["end"] * 16000)])
    assert (
        client.post(
            "/v1/enroll", headers=AUTH, data={"speaker": "Ada Lovelace"}, files=files(audio=("ada.wav", piece))
        ).status_code
        == 200
    )
    named = client.post("/v1/diarize", data={"max_speakers": "3"}, files=files(audio=("conv.wav", data))).json()
    assert "Ada_Lovelace" in named["speakers"]
    assert named["names"]["Ada_Lovelace"]["enrolled"] == "Ada Lovelace"

    error_of(client.post("/v1/diarize", files=files(audio=("x.wav", b"junk"))), 422, "bad_audio")
    error_of(
        client.post("/v1/diarize", data={"speakers": "0"}, files=files(audio=("conv.wav", data))), 400, "bad_field"
    )


def test_diarize_leaves_out_digital_silence_inside_speech(client, monkeypatch):
    from redimnet.diarization import OracleVAD

    # a detector that calls everything speech, so windows of exact zeros reach the pipeline
    monkeypatch.setattr("redimnet.diarization.diarizer.make_vad", lambda name: OracleVAD([(0.0, 60.0)]))
    wave = np.concatenate([speech(1, 5, 3.0), np.zeros(4 * 16000, dtype=np.float32), speech(2, 6, 3.0)])
    response = client.post("/v1/diarize", files=files(audio=("gap.wav", wav_bytes(wave))))
    assert response.status_code == 200, response.text
    segments = response.json()["segments"]
    assert segments and not any(s["start"] < 5.0 < s["end"] for s in segments)  # the middle of the zeros
    silent = client.post("/v1/diarize", files=files(audio=("mute.wav", wav_bytes(np.zeros(3 * 16000)))))
    assert silent.status_code == 200, silent.text
    assert silent.json()["segments"] == [] and silent.json()["speakers"] == []


# --- the batcher ------------------------------------------------------------------------------------------------
def test_batcher_runs_a_batch_where_a_bad_waveform_fails_alone(embedder):
    from redimnet.service import Batcher

    good = [speech(1, 7), speech(2, 8)]
    silent = np.zeros(32000, dtype=np.float32)
    batcher = Batcher(embedder, max_batch=8, max_wait=0.5)
    try:
        futures = [batcher.submit(w) for w in (good[0], silent, good[1])]
        results = [f.result(timeout=60) for f in futures]
    finally:
        batcher.close()
    assert batcher.stats.batches == 1 and batcher.stats.largest == 3  # collected into one model call
    assert "no speech signal" in results[1].error and results[1].embedding is None
    for wave, result in zip(good, (results[0], results[2])):
        np.testing.assert_allclose(result.embedding, embedder.embed(wave, 16000), rtol=1e-4, atol=1e-5)
    assert not batcher.alive


def test_not_ready_when_the_model_thread_has_stopped(client):
    client.app.state.service.batcher.close()
    response = client.get("/v1/ready")
    assert response.status_code == 503 and "model thread" in response.json()["problems"][0]


# --- another storage behind the same interface ----------------------------------------------------------------
class DictStore:
    """A minimal in-memory SpeakerStore: what another back-end (e.g. a database server) has to provide."""

    def __init__(self, shared):
        self.shared = shared  # name -> list of embeddings, shared by every thread's "connection"

    def enroll(self, name, embeddings, utterances, fingerprint=None):
        self.shared.setdefault(name, []).extend(np.asarray(embeddings, dtype=np.float32))
        return len(self.shared[name])

    def remove(self, name):
        return len(self.shared.pop(name))

    def speakers(self, limit=None, after=None):
        from redimnet.speakers.sqlite import Speaker

        rows = [Speaker(name, len(rows), 0.0, 0.0) for name, rows in sorted(self.shared.items())]
        rows = [row for row in rows if after is None or row.name > after]
        return rows[:limit] if limit is not None else rows

    def count(self):
        return len(self.shared), sum(len(rows) for rows in self.shared.values())

    def has_speaker(self, name):
        return name in self.shared

    def utterances(self, name):
        return [str(i) for i in range(len(self.shared[name]))], np.stack(self.shared[name])

    def speaker_model(self, name):
        return redimnet.embedding.similarity.l2_normalize(np.stack(self.shared[name])).mean(axis=0)

    def identify(self, embedding, top=5, fingerprint=None):
        if not self.shared:
            raise EmptyStoreError("nobody is enrolled")
        scores = [
            (n, redimnet.embedding.similarity.cosine_score(embedding, self.speaker_model(n))) for n in self.shared
        ]
        return sorted(scores, key=lambda item: -item[1])[:top]

    def built_with(self):
        return None

    def close(self):
        pass


def test_the_service_runs_on_another_store(embedder, tmp_path, clips):
    shared = {}
    settings = ServiceSettings(db=tmp_path / "unused.db", token=TOKEN, max_wait=0.002)
    service = Service(embedder, settings, model_fingerprint(embedder.model), store=lambda: DictStore(shared))
    with TestClient(create_app(service), base_url="http://localhost", raise_server_exceptions=False) as client:
        assert client.post("/v1/identify", files=files(audio=("b1.wav", clips["b1"]))).json()["matches"] == []
        for name, clip in (("Alice", "a1"), ("Bob", "b1")):
            assert (
                client.post(
                    "/v1/enroll", headers=AUTH, data={"speaker": name}, files=files(audio=("x.wav", clips[clip]))
                ).status_code
                == 200
            )
        assert [s["speaker"] for s in client.get("/v1/speakers").json()["speakers"]] == ["Alice", "Bob"]
        matches = client.post("/v1/identify", files=files(audio=("b1.wav", clips["b1"]))).json()["matches"]
        assert matches[0]["speaker"] == "Bob" and matches[0]["score"] == pytest.approx(1.0, abs=1e-3)
        verified = client.post("/v1/verify", data={"speaker": "Alice"}, files=files(audio=("a.wav", clips["a1"])))
        assert verified.json()["score"] == pytest.approx(1.0, abs=1e-3)
        assert client.delete("/v1/speakers/Bob", headers=AUTH).json()["removed_recordings"] == 1
        assert client.get("/v1/ready").status_code == 200
    assert set(shared) == {"Alice"} and not (tmp_path / "unused.db").exists()


def test_serve_checks_token_and_database_before_listening(tmp_path, monkeypatch, capsys):
    from redimnet.cli import main

    monkeypatch.setenv("REDIMNET_SERVICE_TOKEN", "")  # unset, and restored after (serve sets the token it makes)
    (tmp_path / "token").write_text("short\n")
    assert main(["serve", "--model", "b0", "--random-init", "--token-file", str(tmp_path / "token")]) == 2
    assert "at least 16" in capsys.readouterr().err

    db = tmp_path / "other.db"
    with SpeakerDatabase(db) as database:
        database.enroll("Old", np.ones((1, 192), dtype=np.float32), ["x"], fingerprint="0123456789abcdef")
    assert main(["serve", "--model", "b0", "--random-init", "--db", str(db), "--threads", "1"]) == 2
    assert "was built with another model (fingerprint 0123456789abcdef" in capsys.readouterr().err
