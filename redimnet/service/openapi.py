"""The OpenAPI 3.1 document of the service (served at ``/openapi.json``)."""

from __future__ import annotations

from .._version import __version__

__all__ = ["openapi_schema"]


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _form(properties: dict, required) -> dict:
    return {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": properties, "required": list(required)}}
        },
    }


_FILE = {"type": "string", "format": "binary", "description": "a recording (WAV, FLAC, OGG/Vorbis, Opus, MP3, ...)"}
_ERROR = {"$ref": "#/components/schemas/Error"}
_DECISION = {
    "llr": {"type": "number"},
    "posterior": {"type": "number"},
    "p_target": {"type": "number"},
    "llr_threshold": {"type": "number"},
    "rule": {"type": "string", "enum": ["bayes", "far"]},
    "far": {"type": ["number", "null"]},
    "decision": {"type": "string", "enum": ["accept", "reject"]},
}


def _errors(*statuses: int) -> dict:
    reasons = {
        400: "malformed request, bad form field or speaker name, or a Host the service does not answer",
        401: "missing or wrong bearer token",
        403: "writes are disabled (the service has no token)",
        404: "unknown speaker",
        409: "the database refuses (e.g. built with another model)",
        413: "the request is too large",
        415: "not multipart/form-data",
        422: "an upload is not usable audio (named in the message)",
        503: "not ready (/v1/ready), or busy: every slot for audio requests is taken (retry after the "
        "Retry-After header's seconds)",
    }
    return {str(s): _json(_ERROR, reasons[s]) for s in statuses}


def openapi_schema(settings) -> dict:
    """The document for a service with ``settings`` (its limits appear in the descriptions)."""
    audio_errors = _errors(400, 413, 415, 422, 503)
    bearer: list = [{"bearer": []}]
    limits = (
        f"Uploads: at most {settings.max_upload_bytes} bytes per request and "
        f"{settings.max_audio_seconds:g} s and {settings.max_decoded_samples} decoded samples "
        "(frames x channels) per recording. "
        f"At most {settings.max_concurrent} requests with audio are processed at once; others wait up to "
        f"{settings.max_queue_seconds:g} s for their turn, then get 503 with Retry-After."
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "redimnet speaker recognition",
            "version": __version__,
            "description": "Embed, verify, enrol and identify speakers with a ReDimNet model. "
            + limits
            + " Enrolling and deleting need 'Authorization: Bearer <token>'.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                        }
                    },
                },
                "Match": {
                    "type": "object",
                    "required": ["speaker", "score"],
                    "properties": {"speaker": {"type": "string"}, "score": {"type": "number"}, **_DECISION},
                },
            },
        },
        "paths": {
            "/v1/health": {
                "get": {
                    "summary": "Liveness",
                    "responses": {
                        "200": _json(
                            {"type": "object", "properties": {"status": {"const": "ok"}}}, "the process answers"
                        )
                    },
                }
            },
            "/v1/ready": {
                "get": {
                    "summary": "Readiness (model thread and database)",
                    "responses": {
                        "200": _json({"type": "object", "properties": {"status": {"const": "ready"}}}, "ready"),
                        **_errors(503),
                    },
                }
            },
            "/v1/info": {
                "get": {
                    "summary": "Model, database, scoring, limits and batching",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "version": {"type": "string"},
                                    "model": {"type": "object"},
                                    "database": {"type": "object"},
                                    "scoring": {"type": "object"},
                                    "limits": {"type": "object"},
                                    "batching": {"type": "object"},
                                    "writes_enabled": {"type": "boolean"},
                                },
                            },
                            "service information",
                        )
                    },
                }
            },
            "/v1/embed": {
                "post": {
                    "summary": "Speaker embedding of one recording",
                    "requestBody": _form({"audio": _FILE}, ["audio"]),
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "embedding": {"type": "array", "items": {"type": "number"}},
                                    "dim": {"type": "integer"},
                                    "seconds": {"type": "number"},
                                    "model_fingerprint": {"type": "string"},
                                },
                            },
                            "the embedding",
                        ),
                        **audio_errors,
                    },
                }
            },
            "/v1/verify": {
                "post": {
                    "summary": "Same speaker? Two recordings, or a recording against an enrolled speaker",
                    "description": "Send 'audio' and either 'audio2' or 'speaker'. The score is cosine (or the "
                    "service's back-end); with a calibration the LLR, posterior and decision follow.",
                    "requestBody": _form({"audio": _FILE, "audio2": _FILE, "speaker": {"type": "string"}}, ["audio"]),
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["score", "scoring"],
                                "properties": {
                                    "score": {"type": "number"},
                                    "scoring": {"type": "string"},
                                    "speaker": {"type": "string"},
                                    **_DECISION,
                                },
                            },
                            "the score (and decision)",
                        ),
                        **audio_errors,
                        **_errors(404, 409),
                    },
                }
            },
            "/v1/identify": {
                "post": {
                    "summary": "The enrolled speakers closest to a recording, best first",
                    "requestBody": _form(
                        {"audio": _FILE, "top": {"type": "integer", "minimum": 1, "default": 5}}, ["audio"]
                    ),
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "matches": {"type": "array", "items": {"$ref": "#/components/schemas/Match"}},
                                    "scoring": {"type": "string"},
                                },
                            },
                            "matches (empty when nobody is enrolled)",
                        ),
                        **audio_errors,
                        **_errors(409),
                    },
                }
            },
            "/v1/diarize": {
                "post": {
                    "summary": "Who speaks when in one recording",
                    "description": "Segments by start time. Speakers whose voice matches an enrolled speaker are "
                    "labelled with that name (details in 'names'); others are SPEAKER_01, ...",
                    "requestBody": _form(
                        {
                            "audio": _FILE,
                            "speakers": {"type": "integer", "minimum": 1},
                            "max_speakers": {"type": "integer", "minimum": 1},
                        },
                        ["audio"],
                    ),
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "duration": {"type": "number"},
                                    "speakers": {"type": "array", "items": {"type": "string"}},
                                    "segments": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "start": {"type": "number"},
                                                "end": {"type": "number"},
                                                "speaker": {"type": "string"},
                                            },
                                        },
                                    },
                                    "names": {"type": "object"},
                                },
                            },
                            "the segments",
                        ),
                        **audio_errors,
                    },
                }
            },
            "/v1/speakers": {
                "get": {
                    "summary": "Enrolled speakers by name, a page at a time",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "required": False,
                            "description": "the next_cursor of the previous page",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "speakers": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "speaker": {"type": "string"},
                                                "recordings": {"type": "integer"},
                                                "created": {"type": "string", "format": "date-time"},
                                                "updated": {"type": "string", "format": "date-time"},
                                            },
                                        },
                                    },
                                    "next_cursor": {"type": "string"},
                                },
                            },
                            "speakers by name; next_cursor while more follow",
                        ),
                        **_errors(400),
                    },
                }
            },
            "/v1/enroll": {
                "post": {
                    "summary": "Add recordings to a speaker (created if new); all or nothing",
                    "security": bearer,
                    "requestBody": _form(
                        {
                            "speaker": {"type": "string", "maxLength": 256},
                            "audio": {"type": "array", "items": _FILE, "maxItems": settings.max_files},
                        },
                        ["speaker", "audio"],
                    ),
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "speaker": {"type": "string"},
                                    "added": {"type": "integer"},
                                    "recordings": {"type": "integer"},
                                },
                            },
                            "enrolled",
                        ),
                        **audio_errors,
                        **_errors(401, 403, 409),
                    },
                }
            },
            "/v1/speakers/{name}": {
                "delete": {
                    "summary": "Remove a speaker and their recordings",
                    "security": bearer,
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "speaker": {"type": "string"},
                                    "removed_recordings": {"type": "integer"},
                                },
                            },
                            "removed",
                        ),
                        **_errors(400, 401, 403, 404),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "the OpenAPI document")},
                }
            },
        },
    }
