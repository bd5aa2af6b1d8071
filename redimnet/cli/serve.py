"""``redimnet serve``: the speaker-recognition HTTP service and its web page (needs ``redimnet[serve]``).

Loads the model once per worker process, opens (or creates) the speaker
database and serves :func:`redimnet.service.create_app` with uvicorn.  Safe
defaults: it listens on 127.0.0.1; enrolling and deleting need a bearer token
read from ``$REDIMNET_SERVICE_TOKEN`` or ``--token-file`` (on a loopback
address without one, a random token is made and printed); on any other
address it refuses to start without a token.  See ``docs/service.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys

from .._utils import threads
from .._utils.optional import require
from .._utils.validation import at_least, positive, within
from ..errors import InvalidArgumentError
from .common import UsageError, show
from .decisions import add_decision_arguments, scoring_from_arguments
from .embed import add_embedder_arguments, embedder_from_arguments

DEFAULT_DB = "speakers.db"

SERVE_WINDOW_SECONDS = 20.0
"""The service's window (``--max-seconds``): at most this much audio goes through the network at once, which
bounds the model's working memory (b0: about 90 MB, b2: about 120 MB on the CPU; 60 s windows: 230 MB and more)."""
SERVE_OVERLAP_SECONDS = 5.0

_ARGS_ENV = "REDIMNET_SERVE_ARGUMENTS"
"""How the parent passes its parsed options to the worker processes of ``--workers N``."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="HTTP service and web page: embed, verify, enroll, identify",
        description="Serve the speaker-recognition API (/v1/..., OpenAPI at /openapi.json) and its web page (/). "
        "Enrolling and deleting need 'Authorization: Bearer TOKEN' with the token from "
        "$REDIMNET_SERVICE_TOKEN or --token-file.",
    )
    group = parser.add_argument_group("service")
    group.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="FILE_OR_URL",
        help=f"speaker database: a SQLite file (default {DEFAULT_DB}; created if new) or a "
        "postgresql://user@host:port/dbname URL (shared by every process and host serving it)",
    )
    group.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; any other address needs a token)",
    )
    group.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    group.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name (or address) clients reach the service by, besides localhost and loopback addresses; "
        "repeatable. Requests whose Host header names anything else are refused (400), which keeps web pages "
        "using DNS rebinding out. The --host address is allowed too; '*' allows any name (only behind a proxy "
        "that checks it)",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes, each with its own copy of the model (default 1)",
    )
    group.add_argument(
        "--token-file",
        metavar="PATH",
        help="file whose first line is the write token (default: $REDIMNET_SERVICE_TOKEN)",
    )
    group.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body in MB (default 20)")
    group.add_argument(
        "--max-upload-seconds", type=float, default=120.0, help="longest recording accepted, in seconds (default 120)"
    )
    group.add_argument("--max-files", type=int, default=8, help="most recordings per enrolment (default 8)")
    group.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        metavar="N",
        help="most requests decoding and embedding audio at once, per server process (default: one per 64 MB "
        "of available memory, at most 16 or 4 per core if more); the others wait --max-queue-seconds for "
        "their turn, then get 503 with Retry-After",
    )
    group.add_argument(
        "--max-queue-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="how long a request waits for its turn before it is refused with 503 (default 10)",
    )
    group.add_argument(
        "--batch-wait-ms",
        type=float,
        default=5.0,
        help="how long concurrent requests are collected into one model batch (default 5 ms; "
        "--batch-size is the largest batch)",
    )
    add_decision_arguments(parser, threshold=False)
    add_embedder_arguments(
        parser,
        max_seconds=SERVE_WINDOW_SECONDS,
        overlap_seconds=SERVE_OVERLAP_SECONDS,
        window_note="; the most audio the network sees at once, which bounds its memory (shorter than "
        "'redimnet embed''s 60 s: pass the same --max-seconds/--overlap-seconds there to get the same embeddings)",
    )
    parser.set_defaults(handler=run)


def _check(args) -> None:
    within("--port", args.port, 1, 65535)
    at_least("--workers", args.workers, 1)
    positive("--max-upload-mb", args.max_upload_mb)
    positive("--max-upload-seconds", args.max_upload_seconds)
    at_least("--max-files", args.max_files, 1)
    if args.max_concurrent is not None:
        at_least("--max-concurrent", args.max_concurrent, 1)
    within("--max-queue-seconds", args.max_queue_seconds, 0, 3600)
    within("--batch-wait-ms", args.batch_wait_ms, 0, 1000)


def allowed_hosts(args) -> tuple:
    """The ``Host`` names answered besides loopback: ``--allowed-host``, and ``--host`` unless it is a wildcard."""
    extra = list(args.allowed_host)
    if args.host not in ("0.0.0.0", "::", "[::]", ""):
        extra.append(args.host)
    return tuple(extra)


def build_app(args, token):
    """The ASGI application the options describe (model loaded, database opened and checked, model warmed up)."""
    from pathlib import Path

    from ..fast.allocator import limit_arenas
    from ..models.fingerprint import model_fingerprint
    from ..service import Service, ServiceSettings, create_app
    from ..speakers.sqlite import SpeakerDatabaseError
    from ..speakers.stores import is_url, open_store, store_label

    limit_arenas()  # before the model and worker threads allocate: they share freed memory instead of each keeping it
    embedder = embedder_from_arguments(args)
    fingerprint = model_fingerprint(embedder.model)
    scoring = scoring_from_arguments(args, fingerprint, int(embedder.embed_dim))
    db = open_store(args.db)  # kept open while serving: it holds the process's speaker index
    try:
        built_with = db.built_with()
        if built_with is not None and built_with != fingerprint:
            raise SpeakerDatabaseError(
                f"{store_label(args.db)} was built with another model (fingerprint {built_with}, this one is "
                f"{fingerprint}); serve it with that model, or use another --db"
            )
        db.prepare_index()  # load, check and update the speaker index before the first request
    except BaseException:
        db.close()
        raise
    settings = ServiceSettings(
        db=args.db if is_url(args.db) else Path(args.db),
        token=token,
        max_upload_bytes=int(args.max_upload_mb * 1e6),
        max_audio_seconds=args.max_upload_seconds,
        max_files=args.max_files,
        max_batch=args.batch_size,
        max_wait=args.batch_wait_ms / 1000,
        model_name=args.model or Path(args.checkpoint).name,
        allowed_hosts=allowed_hosts(args),
        max_concurrent=args.max_concurrent,
        max_queue_seconds=args.max_queue_seconds,
    )
    service = Service(embedder, settings, fingerprint, scoring, keep_open=db)
    try:
        service.warm_up()  # the first forward pass is slow and grows the memory: pay it before the first request
    except BaseException:
        service.batcher.close()
        service.close()
        raise
    return create_app(service)


def worker_app():
    """The application of one ``--workers`` process (uvicorn's factory; options from the parent)."""
    from ..service import load_token

    args = argparse.Namespace(**json.loads(os.environ[_ARGS_ENV]))
    return build_app(args, load_token(args.token_file))


def run(args) -> int:
    _check(args)
    require("starlette", "'redimnet serve'")
    require("python_multipart", "'redimnet serve'")
    uvicorn = require("uvicorn", "'redimnet serve'")
    from ..service.auth import TOKEN_ENV, AllowedHosts, is_loopback, load_token
    from ..speakers.stores import store_label

    try:
        AllowedHosts(args.allowed_host)
    except InvalidArgumentError as error:
        raise UsageError(str(error)) from None

    token = load_token(args.token_file)
    if token is None:
        if not is_loopback(args.host):
            raise UsageError(
                f"refusing to listen on {show(args.host)} without a write token: anyone who can reach "
                f"it could change the speaker database. Set ${TOKEN_ENV} or --token-file (or listen "
                "on 127.0.0.1)"
            )
        token = secrets.token_urlsafe(24)
        os.environ[TOKEN_ENV] = token  # the worker processes read the same token
        print(
            f"redimnet: write token for enroll/delete (set ${TOKEN_ENV} or --token-file to choose one): {token}",
            file=sys.stderr,
        )
    if args.threads is None:  # the cores shared between the worker processes
        args.threads = max(1, threads.model_threads(None) // args.workers)
    options = {k: v for k, v in vars(args).items() if k != "handler"}
    app = build_app(args, token)  # also checks everything before listening
    print(
        f"redimnet: serving on http://{show(args.host)}:{args.port}/ (API /v1, schema /openapi.json); "
        f"database {show(store_label(args.db))}",
        file=sys.stderr,
    )
    if args.workers == 1:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=5)
        return 0
    app.state.service.close()  # the workers load the speaker index this saved
    del app
    os.environ[_ARGS_ENV] = json.dumps(options)
    uvicorn.run(
        "redimnet.cli.serve:worker_app",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    return 0
