"""Random requests against the service (in process): never a 5xx, always the security headers, no server path.

Hypothesis draws the method, the path (every route, with random names), the ``Host``, the token, the
content type (with random and over-long multipart boundaries), a lying ``Content-Length`` and the body:
random bytes, or a well-formed form with random fields (names with control, format and look-alike
characters, numbers as text) and uploads (a real recording, a cut-off one, random bytes, a loud float file).
"""

import io
import warnings

import numpy as np
import pytest
import soundfile
import torch

pytest.importorskip("starlette")
pytest.importorskip("python_multipart")
pytest.importorskip("httpx")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

import redimnet  # noqa: E402
from redimnet.models.fingerprint import model_fingerprint  # noqa: E402
from redimnet.service import Service, ServiceSettings, create_app  # noqa: E402
from redimnet.testing.synth import synthesize, voice_for  # noqa: E402

TOKEN = "fuzz-token-0123456789abcdef"


def wav(wave, subtype="PCM_16"):
    buffer = io.BytesIO()
    soundfile.write(buffer, wave, 16000, format="WAV", subtype=subtype)
    return buffer.getvalue()


SPEECH = synthesize(voice_for(0, 1), 1.0, np.random.default_rng(0))
LOUD = SPEECH.copy()
LOUD[100] = 3e38
UPLOADS = [wav(SPEECH), wav(SPEECH)[:300], b"", b"RIFF\x00\x00\x00\x00WAVEfmt ", wav(LOUD, "FLOAT")]


@pytest.fixture(scope="module")
def client(tmp_path_factory, one_thread):
    torch.manual_seed(0)
    embedder = redimnet.Embedder(redimnet.build("b0").eval(), device="cpu", max_seconds=2.0, overlap_seconds=0.5)
    folder = tmp_path_factory.mktemp("fuzz")
    service_settings = ServiceSettings(db=folder / "speakers.db", token=TOKEN, max_wait=0.001, max_upload_bytes=200_000)
    service = Service(embedder, service_settings, model_fingerprint(embedder.model))
    with TestClient(create_app(service), base_url="http://localhost", raise_server_exceptions=False) as client:
        client.folder = str(folder)
        yield client


names = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["Alice", "José", "Jose\u0301", "Al\u200bice", "\ufeffBob", "a/b", "..", "%2F", "x" * 300]),
)
paths = st.one_of(
    st.sampled_from(
        [
            "/v1/nothing",
            "/",
            "/v1/health",
            "/v1/ready",
            "/v1/info",
            "/v1/embed",
            "/v1/verify",
            "/v1/identify",
            "/v1/diarize",
            "/v1/speakers",
            "/v1/enroll",
            "/openapi.json",
            "/static/app.js",
            "/static/../app.py",
        ]
    ),
    names.map(lambda name: "/v1/speakers/" + "".join(c if c.isalnum() else f"%{ord(c) % 256:02X}" for c in name)),
)
boundaries = st.one_of(
    st.text(alphabet="abcXYZ019-_'=;\" ", min_size=0, max_size=80),
    st.sampled_from([300, 1, 70, 71, 256, 257, 400]).map(lambda n: "b" * n),  # around RFC 2046's 70 and 256
    st.just("fuzzboundary"),
)
content_types = st.one_of(
    boundaries.map(lambda b: f"multipart/form-data; boundary={b}"),
    st.just("multipart/form-data; boundary=fuzzboundary"),
    st.none(),
    st.sampled_from(["application/json", "multipart/form-data", "text/plain; charset=utf-8", "multipart/mixed"]),
)
form_fields = st.dictionaries(
    st.sampled_from(["speaker", "top", "speakers", "max_speakers", "other"]),
    st.one_of(names, st.sampled_from(["0", "1", "5", "101", "-1", "1e9", "nan", " 3 "])),
    max_size=3,
)
form_files = st.lists(
    st.tuples(st.sampled_from(["audio", "audio2", "x"]), st.sampled_from(range(len(UPLOADS))), names),
    max_size=3,
)


def multipart(boundary: str, fields: dict, uploads: list) -> bytes:
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
        )
    for field, index, filename in uploads:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n\r\n'
        parts.append(head.encode("utf-8", "replace") + UPLOADS[index] + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


ALLOWED = ["localhost", "127.0.0.1:8000", "[::1]"]
FOREIGN = ["attacker.example", "localhost.evil", ""]
tokens = st.sampled_from([None, TOKEN, "wrong", ""])


@st.composite
def forms(draw):
    """A well-formed upload to an endpoint that reads forms, from an allowed host."""
    fields, uploads = draw(form_fields), draw(form_files)
    headers = {"Host": draw(st.sampled_from(ALLOWED)), "Content-Type": "multipart/form-data; boundary=fuzzboundary"}
    token = draw(tokens)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    path = draw(st.sampled_from(["/v1/embed", "/v1/verify", "/v1/identify", "/v1/enroll", "/v1/diarize"]))
    return "POST", path, headers, multipart("fuzzboundary", fields, uploads)


@st.composite
def broken_bodies(draw):
    """Any content type (random and over-long boundaries), a lying Content-Length, random or cut bytes."""
    headers = {"Host": draw(st.sampled_from(ALLOWED))}
    content_type = draw(content_types)
    if content_type is not None:
        headers["Content-Type"] = content_type
    length = draw(st.sampled_from([None, "0", "3", "100000", "99999999999", "-1", "abc"]))
    if length is not None:
        headers["Content-Length"] = length
    form = multipart("fuzzboundary", draw(form_fields), draw(form_files))
    body = draw(st.one_of(st.binary(max_size=300), st.integers(0, len(form)).map(lambda n: form[:n])))
    path = draw(st.sampled_from(["/v1/embed", "/v1/verify", "/v1/enroll", "/v1/diarize"]))
    return "POST", path, headers, body


@st.composite
def anything(draw):
    """Any method on any path, from any host, with any token; no body."""
    headers = {"Host": draw(st.sampled_from(ALLOWED + FOREIGN))}
    token = draw(tokens)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return draw(st.sampled_from(["GET", "POST", "DELETE", "PUT", "OPTIONS"])), draw(paths), headers, None


@pytest.mark.slow
def test_no_request_gets_a_5xx_or_loses_its_headers(client):
    statuses = set()

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
    @given(request=st.one_of(forms(), broken_bodies(), anything()))
    def probe(request):
        method, path, headers, body = request
        response = client.request(method, path, headers=headers, content=body)
        statuses.add(response.status_code)
        assert response.status_code < 500, (method, path, headers, response.text[:300])
        assert response.headers.get("x-content-type-options") == "nosniff"
        assert "content-security-policy" in response.headers
        assert client.folder not in response.text
        if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
            assert set(response.json()["error"]) == {"code", "message"}
        if headers["Host"] in FOREIGN:  # refused before anything else
            assert response.status_code == 400 and response.json()["error"]["code"] == "bad_host"

    probe()
    assert {200, 400, 401, 404, 405, 415, 422} <= statuses, sorted(statuses)  # the draws reached every kind
