"""The error catalogue: each error class is reported through its category, with one exit status
(command line) and one HTTP status and code (service), written once in redimnet/errors.py."""

import warnings

import pytest

from redimnet._utils.names import UnsafeNameError
from redimnet._utils.optional import MissingDependencyError
from redimnet.audio import AudioError
from redimnet.cli import run_handler
from redimnet.errors import (
    AUDIO,
    CATALOGUE,
    INTERNAL,
    INVALID,
    NAME,
    STORE,
    UNKNOWN_SPEAKER,
    CheckpointError,
    ConfigError,
    category_of,
)
from redimnet.speakers.sql import EmptyStoreError, SpeakerDatabaseError, UnknownSpeakerError

# (error, exit status, HTTP status, JSON code): what users and clients are documented to get.
REPORTED = [
    (ConfigError("C must be a positive integer, got 0"), 2, 400, "bad_request"),
    (CheckpointError("not a checkpoint"), 2, 400, "bad_request"),
    (MissingDependencyError("install redimnet[search]"), 2, 400, "bad_request"),
    (AudioError("a.wav: empty"), 2, 422, "bad_audio"),
    (UnsafeNameError("speaker name 'a\\u202eb' contains a bidirectional control"), 2, 400, "bad_name"),
    (SpeakerDatabaseError("built with another model"), 2, 409, "database"),
    (EmptyStoreError("no speakers"), 2, 409, "database"),
    (UnknownSpeakerError("Dora", "no speaker named 'Dora' is enrolled"), 2, 404, "unknown_speaker"),
    (RuntimeError("a bug"), 1, 500, "internal"),
]


def test_the_catalogue_has_one_row_per_category():
    assert len({category.name for category in CATALOGUE}) == len(CATALOGUE)
    assert {category.name for category in CATALOGUE} == {
        "invalid",
        "audio",
        "name",
        "unknown_speaker",
        "store",
        "internal",
    }
    # a client tells categories apart by status and code
    assert len({(category.http_status, category.code) for category in CATALOGUE}) == len(CATALOGUE)
    assert [c.exit_status for c in CATALOGUE if c is not INTERNAL] == [2] * (len(CATALOGUE) - 1)


@pytest.mark.parametrize("error, exit_status, http_status, code", REPORTED, ids=lambda v: type(v).__name__)
def test_each_error_class_has_its_category(error, exit_status, http_status, code):
    category = category_of(error)
    assert category in CATALOGUE
    assert (category.exit_status, category.http_status, category.code) == (exit_status, http_status, code)


def test_subclasses_inherit_their_category_unless_they_say_otherwise():
    assert category_of(EmptyStoreError("x")) is STORE and category_of(UnknownSpeakerError("x", "y")) is UNKNOWN_SPEAKER
    assert category_of(ConfigError("x")) is INVALID and category_of(AudioError("x")) is AUDIO
    assert category_of(UnsafeNameError("x")) is NAME and category_of(ValueError("x")) is INTERNAL


@pytest.mark.parametrize("error, exit_status, http_status, code", REPORTED, ids=lambda v: type(v).__name__)
def test_the_command_line_exits_with_the_category_status(error, exit_status, http_status, code, capsys, monkeypatch):
    monkeypatch.delenv("REDIMNET_DEBUG", raising=False)

    def handler(_args):
        raise error

    assert run_handler(handler, None) == exit_status
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("redimnet: error: " if exit_status == 2 else "redimnet: unexpected error")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    pytest.importorskip("starlette")
    pytest.importorskip("python_multipart")
    pytest.importorskip("httpx")
    import torch

    import redimnet
    from redimnet.models.families import build_model
    from redimnet.models.fingerprint import model_fingerprint
    from redimnet.service import Service, ServiceSettings, create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    torch.manual_seed(0)
    config = redimnet.get_architecture("b0").config.replace(C=4, embed_dim=16)
    embedder = redimnet.Embedder(build_model(config).eval(), device="cpu")
    settings = ServiceSettings(db=tmp_path_factory.mktemp("errors") / "speakers.db", model_name="tiny")
    service = Service(embedder, settings, model_fingerprint(embedder.model))
    with TestClient(create_app(service), base_url="http://localhost", raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("error, exit_status, http_status, code", REPORTED, ids=lambda v: type(v).__name__)
def test_the_service_answers_with_the_category_status(error, exit_status, http_status, code, client, monkeypatch):
    from redimnet.speakers.sqlite import SpeakerDatabase

    def speakers(self, *args, **options):
        raise error

    monkeypatch.setattr(SpeakerDatabase, "speakers", speakers)
    response = client.get("/v1/speakers")
    assert response.status_code == http_status, response.text
    assert response.json()["error"]["code"] == code
    if http_status == 500:  # a bug: a generic message, nothing of the exception
        assert "a bug" not in response.text
