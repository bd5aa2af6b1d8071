"""The HTTP application: versioned JSON endpoints over one embedder and one speaker database.

:func:`create_app` builds a Starlette application from a :class:`Service`.
Every request follows the same path: check the token (write endpoints), read
the form within the limits, files spooled to temporary files (:mod:`.uploads`),
wait for an admission slot (:mod:`.admission`: at most ``max_concurrent``
requests decode and embed at once, the others wait briefly, then get 503),
check each upload's header (:class:`redimnet.audio.AudioBytes`, in a worker
thread, which also decodes an upload of at most one window), embed through the
dynamic batcher (:mod:`.batcher`; longer uploads are decoded block by block in
the model thread, and at most one window of audio goes through the network at
once), then score or store.  Refusals are
``{"error": {"code", "message"}}`` bodies with a 4xx status; an unexpected
failure is a 500 with a generic message (the traceback goes to the server's
log, never to the client).  How errors become responses, and the outer layer
that refuses a ``Host`` that is not allowed, puts the security headers on
every response and turns anything unexpected into that 500, are in
:mod:`.responses`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union, cast

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._utils.names import UnsafeNameError, check_speaker_name, printable
from .._version import __version__
from ..audio.read import TARGET_SAMPLE_RATE, AudioBytes, AudioError
from ..errors import RedimnetError
from ..speakers.sql import EmptyStoreError
from ..speakers.store import SpeakerStore
from ..speakers.stores import is_url, open_store
from .admission import Admission, default_max_concurrent
from .auth import AllowedHosts, check_bearer
from .batcher import Batcher
from .errors import ServiceError
from .openapi import openapi_schema
from .responses import EXCEPTION_HANDLERS, Guard, unknown_speaker
from .uploads import Form, Upload, optional_upload, read_form, single_upload

if TYPE_CHECKING:
    from ..embedding.embedder import Embedder
    from ..embedding.pipeline import EmbeddingPipeline, Result
    from ..speakers.scorer import Scorer

__all__ = ["ServiceSettings", "Service", "create_app"]

log = logging.getLogger("redimnet.service")

MAX_TOP = 100
"""The most matches ``/v1/identify`` returns."""
PAGE_DEFAULT = 1000
"""Speakers per ``GET /v1/speakers`` page unless ``limit`` says otherwise."""
PAGE_MAX = 10_000
"""The largest ``limit`` of ``GET /v1/speakers`` (a million speakers never come back in one response)."""


@dataclass
class ServiceSettings:
    """What the operator chose: the speaker database, the write token, the limits and the batching."""

    db: Union[Path, str]
    """A SQLite file, or a ``postgresql://`` URL (kept as text)."""
    token: Optional[str] = None
    max_upload_bytes: int = 20_000_000
    """Largest request body (all files and fields together)."""
    max_audio_seconds: float = 120.0
    """Longest recording accepted, from its header, before decoding."""
    max_decoded_samples: Optional[int] = None
    """Most samples (frames x channels) one recording may decode to, from its header, before decoding;
    ``None``: ``max_audio_seconds`` of 48 kHz stereo (11.52 million for 120 s).  Uploads are decoded
    block by block, so this bounds the CPU time a small compressed file can cost, not the memory."""
    max_files: int = 8
    """Most recordings in one enrolment."""
    max_batch: int = 16
    max_wait: float = 0.005
    """Seconds the batcher waits for more requests before running the model."""
    model_name: str = "model"
    allowed_hosts: Tuple[str, ...] = ()
    """``Host`` names answered besides ``localhost`` and loopback addresses (``*``: any; see
    :class:`redimnet.service.auth.AllowedHosts`)."""
    max_concurrent: Optional[int] = None
    """Most requests decoding and embedding audio at once (``None``: from the cores and the memory
    available, :func:`redimnet.service.admission.default_max_concurrent`)."""
    max_queue_seconds: float = 10.0
    """How long a request waits for one of those slots before it is refused (503, ``Retry-After``)."""

    def __post_init__(self):
        if not is_url(self.db):
            self.db = Path(self.db)
        if self.max_decoded_samples is None:
            self.max_decoded_samples = int(self.max_audio_seconds * 2 * 48_000)
        if self.max_concurrent is None:
            self.max_concurrent = default_max_concurrent()


@dataclass
class Embedded:
    """One upload's embedding ``[D]`` and the seconds of audio it was made from."""

    vector: np.ndarray
    seconds: float


def _where(upload: Upload) -> str:
    """How messages name an upload: the client's file name (escaped, shortened), else its form field."""
    return f"'{printable(upload.filename or upload.field)[:120]}'"


def _embedded(result: "Result", where: str) -> Embedded:
    """The embedding in a pipeline result, or its refusal as :class:`AudioError` naming ``where``."""
    if result.error is not None or result.embedding is None:
        raise AudioError(f"{where}: {result.error}")
    return Embedded(result.embedding, round(result.samples / TARGET_SAMPLE_RATE, 3))


@dataclass
class Service:
    """The running parts: embedder, batcher, admission, scoring (cosine or a back-end, optional calibration),
    settings.

    Recordings are embedded by the embedder's pipeline with its windows (``max_seconds``, the mean of
    overlapping windows for longer ones), capped so that at most one window's length of audio goes
    through the network at once (:meth:`redimnet.embedding.pipeline.EmbeddingPipeline.capped`): the
    network's working memory is bounded by the window length, not by the upload's.
    """

    embedder: "Embedder"
    settings: ServiceSettings
    fingerprint: str
    scoring: Optional["Scorer"] = None
    """A :class:`redimnet.speakers.scorer.Scorer`, or ``None`` for plain cosine without decisions."""
    pipeline: "EmbeddingPipeline" = field(init=False)
    batcher: Batcher = field(init=False)
    admission: Admission = field(init=False)
    store: Optional[Callable[[], SpeakerStore]] = None
    """Opens one connection to the speaker storage (default: :func:`redimnet.speakers.stores.open_store`
    of ``settings.db``)."""
    keep_open: Optional[SpeakerStore] = None
    """A connection held for the service's life (``redimnet serve`` loads the speaker index through it before
    the first request); :meth:`close` saves the index and closes it."""
    _local: threading.local = field(default_factory=threading.local)
    _diarize_lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self):
        self.pipeline = self.embedder.pipeline.capped()
        self.batcher = Batcher(self.pipeline, self.settings.max_batch, self.settings.max_wait)
        self.admission = Admission(cast(int, self.settings.max_concurrent), self.settings.max_queue_seconds)

    def warm_up(self) -> None:
        """Embed a recording of noise two windows long the way uploads are embedded (decoded from an encoded
        file, cut into windows, in the model thread), so that the first request pays neither for the model's
        first call nor for the first growth of the memory its forward passes use."""
        import io

        import soundfile

        samples = 2 * self.pipeline.windowing.max_samples
        noise = np.random.default_rng(0).standard_normal(samples).astype(np.float32) * 0.1
        encoded = io.BytesIO()
        soundfile.write(encoded, noise, TARGET_SAMPLE_RATE, format="WAV", subtype="PCM_16")
        for _ in range(2):
            result = self.batcher.submit(AudioBytes(encoded, "the warm-up noise")).result()
            if result.error is not None:
                raise RedimnetError(f"the model fails on {samples} samples of noise: {result.error}")

    # --- database (one connection per thread; the speaker index is shared by the process) -------------
    def db(self) -> SpeakerStore:
        """This thread's connection to the speaker storage (opened on first use)."""
        connection = getattr(self._local, "db", None)
        if connection is None:
            connection = self._local.db = self.store() if self.store else open_store(self.settings.db)
        return connection

    def close(self) -> None:
        """Save the speaker index (when the store keeps one) and close the connection held open."""
        store, self.keep_open = self.keep_open, None
        if store is not None:
            save = getattr(store, "save_index", None)
            if save is not None:
                save()
            store.close()

    # --- audio -------------------------------------------------------------------------------------
    def prepare(self, upload: Upload) -> Union[np.ndarray, AudioBytes]:
        """The upload, its header checked against the limits as the command line checks files
        (:class:`AudioError`): decoded here (16 kHz) when it is at most one window long, so that short
        uploads are decoded in parallel with the model; else as a stream (:class:`AudioBytes`) that the
        model thread decodes block by block as its windows are needed.  Either gives the same embedding."""
        stream = AudioBytes(
            upload.file,
            _where(upload),
            channel=self.embedder.channel,
            trim=self.embedder.trim_silence,
            max_seconds=self.settings.max_audio_seconds,
            max_decoded_samples=self.settings.max_decoded_samples,
        )
        return stream.read() if stream.length <= self.pipeline.windowing.max_samples else stream

    def decode(self, upload: Upload) -> np.ndarray:
        """The whole upload as a 16 kHz waveform (for diarization), checked like :meth:`prepare`."""
        prepared = self.prepare(upload)
        return prepared if isinstance(prepared, np.ndarray) else prepared.read()

    async def embed(self, uploads: List[Upload]) -> List[Embedded]:
        """Embeddings of ``uploads`` in order; the first bad one raises :class:`AudioError` (422).

        Holds an admission slot (503 when none frees in time); every header is checked before any upload
        is embedded."""
        async with self.admission.slot():
            prepared = [await run_in_threadpool(self.prepare, upload) for upload in uploads]
            futures = [asyncio.wrap_future(self.batcher.submit(item)) for item in prepared]
            results = await asyncio.gather(*futures)
        return [_embedded(result, _where(upload)) for upload, result in zip(uploads, results)]

    # --- diarization ---------------------------------------------------------------------------------
    async def diarize_upload(self, upload: Upload, num_speakers: Optional[int], max_speakers: Optional[int]):
        """``(seconds, result)``: :meth:`diarize` of the decoded upload, holding an admission slot.  The upload
        is decoded in its turn (one diarization at a time): waiting ones hold their spooled file, not its audio."""

        def decoded_and_diarized():
            with self._diarize_lock:
                wave = self.decode(upload)
                return round(len(wave) / TARGET_SAMPLE_RATE, 3), self.diarize(wave, num_speakers, max_speakers)

        async with self.admission.slot():
            return await run_in_threadpool(decoded_and_diarized)

    def diarize(self, wave: np.ndarray, num_speakers: Optional[int], max_speakers: Optional[int]):
        """Who speaks when in ``wave`` (16 kHz), clusters named after enrolled speakers; one at a time.

        The diarizer's model calls go through the batcher like every other request's.
        """
        from ..diarization import Diarizer

        with self._diarize_lock:
            db = self.db()
            named = db.count()[0] > 0  # clusters are named after enrolled speakers (the Diarizer identifies them)
            diarizer = Diarizer(_ThroughBatcher(self.embedder, self.batcher), speakers_db=db if named else None)
            return diarizer.diarize(wave, num_speakers=num_speakers, max_speakers=max_speakers, recording="upload")

    # --- scoring -------------------------------------------------------------------------------------
    def decision_fields(self, scores: List[float], durations=None) -> List[Dict[str, Any]]:
        """LLR, posterior and decision per score when a calibration is loaded, else empty dicts."""
        return self.scorer.decisions(scores, durations)

    @property
    def scorer(self) -> "Scorer":
        """The scorer in use (plain cosine without decisions when none was given)."""
        if self.scoring is not None:
            return self.scoring
        from ..speakers.scorer import Scorer

        return Scorer()

    @property
    def scoring_name(self) -> str:
        return self.scorer.name


class _ThroughBatcher:
    """The embedder, except that :meth:`embed_prepared` runs in the batcher's model thread."""

    def __init__(self, embedder, batcher: Batcher):
        self._embedder, self._batcher = embedder, batcher

    def __getattr__(self, name):
        return getattr(self._embedder, name)

    def embed_prepared(self, waves) -> np.ndarray:
        futures = [self._batcher.submit(w) for w in waves]
        vectors = [_embedded(future.result(), "a diarization window").vector for future in futures]
        return np.stack(vectors) if vectors else np.zeros((0, self._embedder.embed_dim), dtype=np.float32)


# --- helpers ---------------------------------------------------------------------------------------------
def _service(request: Request) -> Service:
    return request.app.state.service


async def _form(request: Request) -> Form:
    service = _service(request)
    return await read_form(
        request.headers, request.stream(), service.settings.max_upload_bytes, max_parts=service.settings.max_files + 8
    )


def _speaker_name(text: Optional[str], where: str = "speaker") -> str:
    if text is None:
        raise ServiceError(400, "missing_field", f"the form field '{where}' (the speaker's name) is missing")
    return check_speaker_name(text)  # the form every store files the name under (NFC, visible characters)


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _known_speaker(db: SpeakerStore, name: str) -> None:
    if not db.has_speaker(name):
        raise unknown_speaker(name)


def _top(value: Optional[str]) -> int:
    return _whole_number(value, "top", 5, MAX_TOP)


def _whole_number(value: Optional[str], what: str, default: int, largest: int) -> int:
    """A query or form field from 1 to ``largest`` (``default`` when absent), or a 400 naming ``what``."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= largest:
        raise ServiceError(400, "bad_field", f"'{what}' must be a whole number from 1 to {largest}, got {value[:20]!r}")
    return number


# --- endpoints -----------------------------------------------------------------------------------------
async def health(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Readiness: the model thread runs and the database answers."""
    service = _service(request)

    def probe():
        service.db().built_with()

    problems = []
    if not service.batcher.alive:
        problems.append("the model thread has stopped")
    try:
        await run_in_threadpool(probe)
    except Exception as error:  # any database failure means not ready
        problems.append(f"the speaker database does not answer ({type(error).__name__})")
    if problems:
        return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


async def info(request: Request) -> Response:
    """The model, the database, the scoring and the limits."""
    service = _service(request)
    settings = service.settings

    def database():
        db = service.db()
        speakers, recordings = db.count()
        model = db.built_with()
        return {
            "kind": "postgresql" if is_url(settings.db) else "sqlite",
            "file": None if is_url(settings.db) else Path(settings.db).name,
            "speakers": int(speakers),
            "recordings": int(recordings),
            "model_fingerprint": model,
        }

    embedder, scoring = service.embedder, service.scoring
    calibrated = scoring is not None and scoring.calibration is not None
    return JSONResponse(
        {
            "version": __version__,
            "model": {
                "name": settings.model_name,
                "fingerprint": service.fingerprint,
                "embedding_dim": int(embedder.embed_dim),
                "parameters": int(sum(p.numel() for p in embedder.model.parameters())),
                "sample_rate": TARGET_SAMPLE_RATE,
                "min_seconds": round(embedder.min_samples / TARGET_SAMPLE_RATE, 4),
                "window_seconds": embedder.max_samples / TARGET_SAMPLE_RATE,
                "optimized": bool(embedder.optimized),
            },
            "database": await run_in_threadpool(database),
            "scoring": {
                "name": service.scoring_name,
                "calibrated": calibrated,
                "prior": scoring.prior if scoring is not None and calibrated else None,
                "far": scoring.far if scoring is not None and calibrated else None,
            },
            "limits": {
                "max_upload_bytes": settings.max_upload_bytes,
                "max_audio_seconds": settings.max_audio_seconds,
                "max_decoded_samples": settings.max_decoded_samples,
                "max_files": settings.max_files,
                "max_top": MAX_TOP,
                "max_concurrent": settings.max_concurrent,
                "max_queue_seconds": settings.max_queue_seconds,
            },
            "batching": {
                "max_batch": settings.max_batch,
                "max_wait_ms": settings.max_wait * 1000,
                "batches": service.batcher.stats.batches,
                "waveforms": service.batcher.stats.waveforms,
                "largest_batch": service.batcher.stats.largest,
                "max_batch_seconds": service.pipeline.batch_samples / TARGET_SAMPLE_RATE,
                "busy": service.admission.busy,
                "refused_busy": service.admission.refused,
            },
            "writes_enabled": settings.token is not None,
        }
    )


async def embed(request: Request) -> Response:
    """The embedding of one uploaded recording (raw, not normalised)."""
    service = _service(request)
    with await _form(request) as form:
        [embedded] = await service.embed([single_upload(form, "audio")])
    return JSONResponse(
        {
            "embedding": [float(x) for x in embedded.vector],
            "dim": int(embedded.vector.shape[0]),
            "seconds": embedded.seconds,
            "model_fingerprint": service.fingerprint,
        }
    )


async def verify(request: Request) -> Response:
    """Two uploads (``audio``, ``audio2``), or one upload against an enrolled ``speaker``: same speaker?"""
    service = _service(request)
    with await _form(request) as form:
        first = single_upload(form, "audio")
        second = optional_upload(form, "audio2")
        speaker = form.fields.get("speaker")
        if (second is None) == (speaker is None):
            raise ServiceError(
                400, "bad_form", "send either a second recording as 'audio2' or an enrolled speaker's name as 'speaker'"
            )
        if second is not None:
            one, two = await service.embed([first, second])
            score = service.scorer.score_pair(one.vector, two.vector)
            durations = [[one.seconds, two.seconds]]
            body = {"score": score, "scoring": service.scoring_name}
            body.update(service.decision_fields([score], durations)[0])
            return JSONResponse(body)
        name = _speaker_name(speaker)
        embedding = (await service.embed([first]))[0].vector

    def against_speaker():
        db = service.db()
        _known_speaker(db, name)
        return service.scorer.score_enrolled(embedding, db, name, service.fingerprint)

    score = await run_in_threadpool(against_speaker)
    body = {"score": score, "scoring": service.scoring_name, "speaker": name}
    body.update(service.decision_fields([score])[0])
    return JSONResponse(body)


async def identify(request: Request) -> Response:
    """The ``top`` enrolled speakers closest to an uploaded recording, best first."""
    service = _service(request)
    with await _form(request) as form:
        upload = single_upload(form, "audio")
        top = _top(form.fields.get("top", request.query_params.get("top")))
        embedding = (await service.embed([upload]))[0].vector

    def rank():
        try:
            return service.scorer.rank(embedding, service.db(), top, service.fingerprint)
        except EmptyStoreError:  # nobody enrolled (or everyone removed meanwhile)
            return []

    matches = await run_in_threadpool(rank)
    rows = [{"speaker": name, "score": score} for name, score in matches]
    for row, extra in zip(rows, service.decision_fields([r["score"] for r in rows]) if rows else []):
        row.update(extra)
    return JSONResponse({"matches": rows, "scoring": service.scoring_name})


def _count(value: Optional[str], what: str) -> Optional[int]:
    if value is None or value == "":
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= 50:
        raise ServiceError(400, "bad_field", f"'{what}' must be a whole number from 1 to 50, got {value[:20]!r}")
    return count


async def diarize(request: Request) -> Response:
    """Who speaks when in one uploaded recording; speakers matching an enrolled one are named after them."""
    service = _service(request)
    with await _form(request) as form:
        upload = single_upload(form, "audio")
        num_speakers = _count(form.fields.get("speakers"), "speakers")
        max_speakers = _count(form.fields.get("max_speakers"), "max_speakers")
        seconds, result = await service.diarize_upload(upload, num_speakers, max_speakers)
    return JSONResponse(
        {
            "duration": seconds,
            "speakers": result.speakers,
            "segments": [{"start": round(s.start, 3), "end": round(s.end, 3), "speaker": s.label} for s in result],
            "names": result.names,
        }
    )


async def list_speakers(request: Request) -> Response:
    """Enrolled speakers by name, a page at a time: ``limit`` (default :data:`PAGE_DEFAULT`) after ``cursor``
    (the previous page's ``next_cursor``); ``next_cursor`` is there while more speakers follow."""
    service = _service(request)
    limit = _whole_number(request.query_params.get("limit"), "limit", PAGE_DEFAULT, PAGE_MAX)
    cursor = request.query_params.get("cursor")
    if cursor is not None and len(cursor) > 4 * 256:
        raise ServiceError(400, "bad_field", "'cursor' is the 'next_cursor' of the previous page (a speaker name)")
    speakers = await run_in_threadpool(lambda: service.db().speakers(limit=limit + 1, after=cursor))
    body: Dict[str, Any] = {
        "speakers": [
            {"speaker": s.name, "recordings": s.utterances, "created": _utc(s.created), "updated": _utc(s.updated)}
            for s in speakers[:limit]
        ]
    }
    if len(speakers) > limit:
        body["next_cursor"] = speakers[limit - 1].name
    return JSONResponse(body)


async def enroll(request: Request) -> Response:
    """Add uploaded recordings (``audio``, repeatable) to ``speaker``; all or nothing.  Needs the token."""
    service = _service(request)
    check_bearer(request.headers.get("authorization"), service.settings.token)
    with await _form(request) as form:
        name = _speaker_name(form.fields.get("speaker"))
        uploads = form.files_named("audio")
        if not uploads:
            raise ServiceError(400, "missing_file", "no file in form field 'audio' (e.g. curl -F audio=@file.wav)")
        if len(uploads) > service.settings.max_files:
            raise ServiceError(
                400,
                "too_many_files",
                f"at most {service.settings.max_files} recordings per enrolment, got {len(uploads)}",
            )
        embeddings = await service.embed(uploads)
    ids = [f"upload:{printable(u.filename or 'audio')[:200]}" for u in uploads]

    def store():
        return service.db().enroll(name, np.stack([e.vector for e in embeddings]), ids, fingerprint=service.fingerprint)

    total = await run_in_threadpool(store)
    return JSONResponse({"speaker": name, "added": len(uploads), "recordings": int(total)})


async def delete_speaker(request: Request) -> Response:
    """Remove a speaker and their recordings.  Needs the token."""
    service = _service(request)
    check_bearer(request.headers.get("authorization"), service.settings.token)
    given = request.path_params["name"]

    def remove():
        db = service.db()
        try:
            name = _speaker_name(given, "name")
        except UnsafeNameError:  # a name stored before the naming policy can still be removed by its exact form
            name = given.strip()
            if not db.has_speaker(name):
                raise
        _known_speaker(db, name)
        return name, db.remove(name)

    name, count = await run_in_threadpool(remove)
    return JSONResponse({"speaker": name, "removed_recordings": int(count)})


async def openapi(request: Request) -> Response:
    """The OpenAPI 3.1 description of this API."""
    return JSONResponse(openapi_schema(_service(request).settings))


# --- the page ----------------------------------------------------------------------------------------------
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}


def _static(path: str):
    name, media_type = _STATIC[path]
    content = resources.files(__package__).joinpath("static", name).read_bytes()

    async def page(request: Request) -> Response:
        return Response(content, media_type=media_type, headers={"Cache-Control": "no-cache"})

    page.__doc__ = f"The web page's {name}."
    return page


ROUTES = [
    ("/v1/health", health, ["GET"]),
    ("/v1/ready", ready, ["GET"]),
    ("/v1/info", info, ["GET"]),
    ("/v1/embed", embed, ["POST"]),
    ("/v1/verify", verify, ["POST"]),
    ("/v1/identify", identify, ["POST"]),
    ("/v1/diarize", diarize, ["POST"]),
    ("/v1/speakers", list_speakers, ["GET"]),
    ("/v1/enroll", enroll, ["POST"]),
    ("/v1/speakers/{name:path}", delete_speaker, ["DELETE"]),
    ("/openapi.json", openapi, ["GET"]),
]
"""Every endpoint: (path, handler, methods).  The OpenAPI document describes each (a test checks)."""


def create_app(service: Service) -> Starlette:
    """The ASGI application serving ``service`` (the batcher's thread stops when the application shuts down)."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(service.batcher.close)
        service.close()  # here, not in a worker thread: SQLite closes a connection only in the thread that opened it

    routes = [Route(path, handler, methods=methods) for path, handler, methods in ROUTES]
    routes += [Route(path, _static(path), methods=["GET"]) for path in _STATIC]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=dict(EXCEPTION_HANDLERS))
    app.state.service = service
    app.add_middleware(Guard, allowed_hosts=AllowedHosts(service.settings.allowed_hosts))
    return app
