"""Speaker database verbs: ``redimnet enroll``, ``redimnet identify``, ``redimnet speakers list|remove|import``.

The database (``--db``) is a SQLite file (default ``speakers.db``; see
:mod:`redimnet.speakers.sqlite`) or a ``postgresql://`` URL (see
:mod:`redimnet.speakers.postgres`), opened by
:func:`redimnet.speakers.stores.open_store`.  ``enroll`` and ``identify`` need
the same model each time (the database refuses embeddings of another model).
"""

import json
import sys
from datetime import datetime, timezone

from .._utils.names import check_speaker_name
from .._utils.validation import at_least
from ..models.fingerprint import model_fingerprint
from ..speakers.bulk import DEFAULT_BATCH, SPEAKER_RULES, import_embeddings
from ..speakers.scorer import BACKEND_CANDIDATES
from ..speakers.store import speaker_pages
from ..speakers.stores import open_store, store_label
from .common import UsageError, show
from .decisions import add_decision_arguments, scoring_from_arguments
from .embed import add_embedder_arguments, collect_inputs, embedder_from_arguments

DEFAULT_DB = "speakers.db"
DB_HELP = f"speaker database: a SQLite file (default {DEFAULT_DB}) or a postgresql://user@host:port/dbname URL"


def add_db_argument(parser) -> None:
    """``--db``: where the speakers are (every verb that reads or writes them takes the same option)."""
    parser.add_argument("--db", default=DEFAULT_DB, metavar="FILE_OR_URL", help=DB_HELP)


def register(subparsers) -> None:
    enroll = subparsers.add_parser(
        "enroll",
        help="add recordings of a speaker to the speaker database",
        description="Embed the recordings and add them to speaker NAME (created if new) in the database. "
        "Exit status: 0 all files enrolled, 1 some files failed (the others are enrolled), 2 usage error.",
    )
    enroll.add_argument("name", metavar="NAME", help="speaker name")
    enroll.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio files or folders of a single speaker")
    add_db_argument(enroll)
    add_embedder_arguments(enroll)
    enroll.set_defaults(handler=run_enroll)

    identify = subparsers.add_parser(
        "identify",
        help="who is speaking: the best-matching enrolled speakers",
        description="Score a recording against the enrolled speakers (cosine similarity with each speaker's "
        "mean embedding, through the speaker index; with --backend, the back-end scores the recordings of the "
        "--candidates speakers closest by cosine) and print the best matches.",
    )
    identify.add_argument("file", metavar="FILE", help="audio file")
    identify.add_argument("--top", type=int, default=5, help="how many speakers to print (default 5)")
    identify.add_argument(
        "--candidates",
        type=int,
        default=BACKEND_CANDIDATES,
        metavar="N",
        help=f"with --backend: the back-end scores the N speakers closest by cosine (default {BACKEND_CANDIDATES}; "
        "found through the speaker index)",
    )
    add_db_argument(identify)
    identify.add_argument("--json", action="store_true", help="print JSON")
    add_decision_arguments(identify, threshold=False)
    add_embedder_arguments(identify)
    identify.set_defaults(handler=run_identify)

    speakers = subparsers.add_parser(
        "speakers",
        help="list, remove or bulk-import enrolled speakers",
        description="'speakers' or 'speakers list' shows the enrolled speakers (last enrolment in ISO-8601 "
        "UTC); 'speakers remove NAME' deletes one; 'speakers import EMBEDDINGS' adds every speaker of an "
        "embeddings file written by 'redimnet embed' (the speaker of each embedding from --utt2spk, else "
        "--speaker-from), in one transaction per --batch speakers, then builds the speaker index.",
    )
    speakers.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=["list", "remove", "import"],
        help="list (the default), remove NAME, or import EMBEDDINGS",
    )
    speakers.add_argument("name", nargs="?", metavar="NAME_OR_FILE", help="speaker to remove, or file to import")
    add_db_argument(speakers)
    speakers.add_argument("--json", action="store_true", help="print JSON (list, import)")
    listing = speakers.add_argument_group("list")
    listing.add_argument(
        "--limit", type=int, metavar="N", help="list at most N speakers (a page; default: every one, read in pages)"
    )
    listing.add_argument(
        "--after", metavar="NAME", help="list the speakers whose names sort after NAME (the last of the previous page)"
    )
    group = speakers.add_argument_group("import")
    group.add_argument("--utt2spk", metavar="FILE", help="Kaldi utt2spk file: 'EMBEDDING_ID SPEAKER' per line")
    group.add_argument(
        "--speaker-from",
        choices=SPEAKER_RULES,
        default="first-component",
        help="without --utt2spk: the speaker is the id's first path component (alice/call1.wav -> alice; the "
        "default) or the whole id (each embedding its own speaker, e.g. a cohort file)",
    )
    group.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, help=f"speakers per transaction (default {DEFAULT_BATCH})"
    )
    group.add_argument(
        "--no-index", action="store_true", help="do not build the speaker index now (the first identify will)"
    )
    speakers.set_defaults(handler=run_speakers)


def run_enroll(args) -> int:
    name = check_speaker_name(args.name)  # before any work; the form the store files it under (NFC)
    items, failures = collect_inputs(args.inputs, [])
    embedder = embedder_from_arguments(args)
    embedded = {}
    for result in embedder.run([path for _, path in items]):
        path = items[result.index][1]
        if result.error is not None:
            failures.append((str(path), result.error))
        else:
            embedded[result.index] = (str(path), result.embedding)
    ids = [embedded[i][0] for i in sorted(embedded)]
    vectors = [embedded[i][1] for i in sorted(embedded)]
    for path, why in failures:
        print(f"redimnet: {show(path)}: {show(why)}", file=sys.stderr)
    if not vectors:
        print(f"redimnet: error: nothing enrolled for '{show(name)}': no usable recording", file=sys.stderr)
        return 1
    import numpy as np

    with open_store(args.db) as db:
        total = db.enroll(name, np.stack(vectors), ids, fingerprint=model_fingerprint(embedder.model))
    where = show(store_label(args.db))
    print(f"enrolled {len(vectors)} recording(s) for '{show(name)}' ({total} in total) in {where}")
    return 1 if failures else 0


def run_identify(args) -> int:
    at_least("--candidates", args.candidates, 1)
    embedder = embedder_from_arguments(args)
    embedding = embedder.embed_file(args.file)
    fingerprint = model_fingerprint(embedder.model)
    scoring = scoring_from_arguments(args, fingerprint, int(embedding.shape[0]))
    with open_store(args.db, create=False) as db:
        matches = scoring.rank(embedding, db, args.top, fingerprint, candidates=args.candidates)
    rows = [{"speaker": name, "score": score} for name, score in matches]
    for row, decision in zip(rows, scoring.decisions([score for _, score in matches])):
        row.update(decision)
    if args.json:
        print(json.dumps(rows))
        return 0
    if scoring.calibration is None:
        print(f"{'rank':>4}  {'score':>7}  speaker")
        for rank, row in enumerate(rows, 1):
            print(f"{rank:>4}  {row['score']:>7.4f}  {show(row['speaker'])}")
        return 0
    print(
        f"{'rank':>4}  {'score':>7}  {'llr':>7}  {'P(same)':>8}  decision  speaker   "
        f"(prior {scoring.prior:g}{', FAR ' + format(scoring.far, 'g') if scoring.far is not None else ''})"
    )
    for rank, row in enumerate(rows, 1):
        print(
            f"{rank:>4}  {row['score']:>7.4f}  {row['llr']:>+7.3f}  {row['posterior']:>8.4f}  "
            f"{row['decision']:<8}  {show(row['speaker'])}"
        )
    return 0


def run_speakers(args) -> int:
    if args.action == "import":
        return run_import(args)
    if args.action == "remove":
        if not args.name:
            raise UsageError("speakers remove needs the NAME of the speaker to remove")
        with open_store(args.db, create=False) as db:
            count = db.remove(args.name)
        print(f"removed '{show(args.name)}' ({count} recording(s)) from {show(store_label(args.db))}")
        return 0
    if args.name:
        raise UsageError("speakers list takes no NAME")
    if args.limit is not None:
        at_least("--limit", args.limit, 1)
    with open_store(args.db, create=False) as db:
        if args.limit is not None:
            pages = iter([db.speakers(limit=args.limit, after=args.after)])
        else:
            pages = speaker_pages(db, after=args.after)
        last = _print_speakers(pages, args.json, store_label(args.db))
    if args.limit is not None and last is not None and last[1] == args.limit and not args.json:
        print(f"redimnet: note: more speakers may follow: --after '{show(last[0])}'", file=sys.stderr)
    return 0


def _print_speakers(pages, as_json: bool, label: str):
    """Print the speakers page by page (JSON: one array); ``(last name, how many)`` or None when none."""
    last, listed = None, 0
    for rows in pages:
        if as_json:
            items = ", ".join(
                json.dumps({"speaker": s.name, "recordings": s.utterances, "updated": _utc(s.updated)}) for s in rows
            )
            print(("[" if last is None else ", ") + items, end="")
        else:
            width = max(7, max(len(show(s.name)) for s in rows))
            if last is None:
                print(f"{'speaker':<{width}}  recordings  last enrolled (UTC)")
            for s in rows:
                print(f"{show(s.name):<{width}}  {s.utterances:>10}  {_utc(s.updated)}")
        last, listed = rows[-1].name, listed + len(rows)
    if as_json:
        print("[]" if last is None else "]")
    elif last is None:
        print(f"no speakers enrolled in {show(label)}")
    return None if last is None else (last, listed)


def run_import(args) -> int:
    import time

    from ..evaluation.trials import read_utt2spk

    if not args.name:
        raise UsageError("speakers import needs the EMBEDDINGS file to import (written by 'redimnet embed')")
    at_least("--batch", args.batch, 1)
    utt2spk = read_utt2spk(args.utt2spk) if args.utt2spk else None
    with open_store(args.db) as db:
        report = import_embeddings(db, args.name, utt2spk=utt2spk, rule=args.speaker_from, batch=args.batch)
        kind, seconds = None, 0.0
        if not args.no_index and report.speakers:
            started = time.perf_counter()
            kind = db.prepare_index()
            db.save_index()
            seconds = time.perf_counter() - started
    if args.json:
        fields = {k: getattr(report, k) for k in ("speakers", "new", "updated", "recordings", "batches", "seconds")}
        print(json.dumps({**fields, "index": kind, "index_seconds": round(seconds, 3)}))
        return 0
    print(
        f"imported {report.recordings} recording(s) of {report.speakers} speaker(s) ({report.new} new, "
        f"{report.updated} already enrolled) from {show(args.name)} into {show(store_label(args.db))} in "
        f"{report.batches} transaction(s), {report.seconds:.1f} s ({report.speakers_per_second:,.0f} speakers/s)"
    )
    if kind is not None:
        print(f"speaker index: {kind}, ready in {seconds:.1f} s")
    return 0


def _utc(seconds: float) -> str:
    """ISO-8601 UTC time stamp to the second, e.g. ``2026-11-25T14:02:55Z``."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
