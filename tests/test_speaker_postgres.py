"""The PostgreSQL speaker store: the same behaviour as the SQLite file, selected by a URL everywhere.

The server is a throwaway one started for the session from the distribution's binaries (conftest's
``postgres_server``); those tests are skipped, with that one reason, where the binaries are missing.
"""

import json
import sys

import numpy as np
import pytest

from redimnet._utils.optional import MissingDependencyError
from redimnet.speakers.sqlite import SpeakerDatabaseError
from redimnet.speakers.stores import open_store, store_label

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def fill(db, rng, dim=16):
    centres = {name: rng.standard_normal(dim) for name in ["ann", "bob", "cid", "dan"]}
    for name, centre in centres.items():
        db.enroll(name, centre + 0.3 * rng.standard_normal((3, dim)), [f"{name}{i}" for i in range(3)], "fp")
    db.enroll("bob", centres["bob"] + 0.3 * rng.standard_normal((2, dim)), ["bob3", "bob4"], "fp")
    db.remove("dan")
    return centres


def test_postgres_and_sqlite_stores_give_the_same_answers(postgres_url, tmp_path):
    answers = []
    for location in (postgres_url, str(tmp_path / "s.db")):
        rng = np.random.default_rng(0)
        with open_store(location) as db:
            centres = fill(db, rng)
            queries = [centres[name] + 0.2 * rng.standard_normal(16) for name in ("ann", "bob", "cid", "dan")]
            answers.append(
                {
                    "identify": [db.identify(q, top=3, fingerprint="fp") for q in queries],
                    "speakers": [(s.name, s.utterances) for s in db.speakers()],
                    "count": db.count(),
                    "bob": db.utterances("bob"),
                    "model": db.speaker_model("cid"),
                    "revision": db.revision(),
                    "known": (db.has_speaker("ann"), db.has_speaker("dan")),
                    "check": db.check(),
                }
            )
    pg, lite = answers
    for a, b in zip(pg["identify"], lite["identify"]):
        assert [n for n, _ in a] == [n for n, _ in b]
        np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=1e-12)
    assert pg["speakers"] == lite["speakers"] == [("ann", 3), ("bob", 5), ("cid", 3)]
    assert pg["count"] == lite["count"] == (3, 11)
    assert pg["bob"][0] == lite["bob"][0] and np.array_equal(pg["bob"][1], lite["bob"][1])
    assert np.array_equal(pg["model"], lite["model"])
    assert pg["revision"] == lite["revision"] == 6  # five enrolments and one removal
    assert pg["known"] == lite["known"] == (True, False)
    assert pg["check"] and lite["check"]
    assert all(name != "dan" for result in pg["identify"] for name, _ in result)


def test_a_database_of_a_newer_schema_is_refused(postgres_url):
    with open_store(postgres_url) as db:
        db.enroll("ann", np.ones((1, 8)), ["a"], "model-1")
        db.connection.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(SpeakerDatabaseError, match="schema version 99, written by a newer redimnet"):
        open_store(postgres_url)


def test_postgres_store_files_names_as_the_sqlite_store_does(postgres_url, tmp_path):
    """One naming policy for every store: NFC, visible characters only, old names normalised on open."""
    from redimnet._utils.names import UnsafeNameError

    for location in (postgres_url, str(tmp_path / "s.db")):
        with open_store(location) as db:
            db.enroll("Jos\u00e9", np.ones((1, 8)), ["a"], "fp")
            assert db.enroll("Jose\u0301", np.ones((1, 8)), ["b"], "fp") == 2
            with pytest.raises(UnsafeNameError, match="U[+]200B"):
                db.enroll("Al\u200bice", np.ones((1, 8)), ["c"], "fp")
            db.enroll("zoe", np.ones((1, 8)), ["d"], "fp")
            cursor = db.connection.cursor()  # as an older redimnet left it: a decomposed name, no policy mark
            cursor.execute(db._sql("UPDATE speakers SET name=? WHERE name=?"), ("Zoe\u0308", "zoe"))
            cursor.execute("DELETE FROM meta WHERE key='names'")  # (both connections commit each statement)
        with open_store(location) as db:
            assert [(s.name, s.utterances) for s in db.speakers()] == [("Jos\u00e9", 2), ("Zo\u00eb", 1)]
            assert db.utterances("Zoe\u0308")[0] == ["d"]


def test_a_new_database_needs_create_and_the_password_stays_out_of_messages(postgres_server, postgres_url):
    with pytest.raises(SpeakerDatabaseError, match="has no speaker tables; enrol a speaker first"):
        open_store(postgres_url, create=False)
    with open_store(postgres_url) as db:
        assert db.count() == (0, 0) and db.built_with() is None
    secret = postgres_url.replace("postgres@", "postgres:hunter2@").rsplit(":", 1)[0] + ":1/nowhere"
    with pytest.raises(SpeakerDatabaseError, match="cannot connect") as caught:
        open_store(secret)
    assert "hunter2" not in str(caught.value) and "postgres@127.0.0.1:1/nowhere" in str(caught.value)
    assert store_label(secret) == "postgresql://postgres@127.0.0.1:1/nowhere"


def test_a_url_is_never_taken_for_a_file_name(tmp_path, monkeypatch, capsys):
    """No ``postgresql:`` folder appears, whatever happens: no extra, no server, another scheme."""
    from redimnet import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # the extra is not installed
    with pytest.raises(MissingDependencyError, match=r'pip install "redimnet\[postgres\]"'):
        open_store("postgresql://user@db.example:5432/speakers")
    assert cli.main(["speakers", "--db", "postgresql://user@db.example:5432/speakers"]) == 2
    assert 'pip install "redimnet[postgres]"' in capsys.readouterr().err
    with pytest.raises(SpeakerDatabaseError, match="mysql:// databases are not supported"):
        open_store("mysql://user:pw@host/db")
    assert cli.main(["speakers", "remove", "x", "--db", "mysql://user:pw@host/db"]) == 2
    err = capsys.readouterr().err
    assert "not supported" in err and ":pw@" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_verbs_on_postgres(postgres_url, b0_model_and_checkpoint, tmp_path, capsys, monkeypatch):
    import soundfile as sf

    from redimnet import cli

    monkeypatch.chdir(tmp_path)
    checkpoint = b0_model_and_checkpoint[1]
    rng = np.random.default_rng(2)
    for name in ["ann", "bob"]:
        base = rng.standard_normal(8000).astype(np.float32) * 0.1
        for i in range(2):
            sf.write(tmp_path / f"{name}{i}.wav", base + 0.01 * rng.standard_normal(8000), 16000, subtype="FLOAT")
    common = ["--checkpoint", str(checkpoint), "--db", postgres_url, "--no-optimize"]
    assert cli.main(["enroll", "ann", str(tmp_path / "ann0.wav"), *common]) == 0
    assert f"in {store_label(postgres_url)}" in capsys.readouterr().out
    assert cli.main(["enroll", "bob", str(tmp_path / "bob0.wav"), *common]) == 0
    assert cli.main(["identify", str(tmp_path / "bob1.wav"), "--top", "2", "--json", *common]) == 0
    assert [r["speaker"] for r in json.loads(capsys.readouterr().out.splitlines()[-1])] == ["bob", "ann"]
    assert cli.main(["speakers", "--db", postgres_url, "--json"]) == 0
    assert [r["speaker"] for r in json.loads(capsys.readouterr().out)] == ["ann", "bob"]
    assert cli.main(["speakers", "remove", "ann", "--db", postgres_url]) == 0
    assert cli.main(["speakers", "remove", "ann", "--db", postgres_url]) == 2
    assert "no speaker named 'ann'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann0.wav", "ann1.wav", "bob0.wav", "bob1.wav"]


def _counting_statements(db):
    """Make ``db`` count the statements its connection sends; returns the list they are appended to."""
    import psycopg

    sent = []

    class Counting(psycopg.Cursor):
        def execute(self, query, params=None, **kwargs):
            sent.append(str(query))
            return super().execute(query, params, **kwargs)

    db.connection.cursor_factory = Counting
    return sent


def test_an_identification_against_an_up_to_date_index_is_one_statement(postgres_url):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((40, 16))
    with open_store(postgres_url) as db:
        for k, vector in enumerate(vectors):
            db.enroll(f"s{k:02d}", vector[None, :], [f"u{k}"], "fp")
        db.identify(vectors[0], top=3, fingerprint="fp")  # loads the index
        sent = _counting_statements(db)
        for k in (5, 17, 31):
            sent.clear()
            best = db.identify(vectors[k] + 0.01 * rng.standard_normal(16), top=3, fingerprint="fp")
            assert best[0][0] == f"s{k:02d}"
            assert len(sent) == 1, sent  # state and candidates together: no BEGIN, no COMMIT, no meta read
        with pytest.raises(SpeakerDatabaseError, match="another model"):  # the model is still checked
            db.identify(vectors[0], top=3, fingerprint="other")
        with pytest.raises(SpeakerDatabaseError, match="16-dimensional"):
            db.identify(np.ones(8), top=3, fingerprint="fp")


def test_one_statement_identification_sees_every_change_made_elsewhere(postgres_url):
    """Another connection (here the same process, so the same index object, left behind) enrols and deletes:
    the next identification notices the store moved on, brings the index up to date and answers from it."""
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((30, 16))
    with open_store(postgres_url) as reader, open_store(postgres_url) as writer:
        for k, vector in enumerate(vectors[:20]):
            writer.enroll(f"s{k:02d}", vector[None, :], [f"u{k}"], "fp")
        reader.identify(vectors[0], top=1, fingerprint="fp")
        sent = _counting_statements(reader)
        writer.enroll("new", vectors[25][None, :], ["n"], "fp")
        assert reader.identify(vectors[25], top=1, fingerprint="fp")[0][0] == "new"
        assert len(sent) > 1  # the revision differed: the full path synced the index
        writer.remove("s07")
        found = [name for name, _ in reader.identify(vectors[7], top=5, fingerprint="fp")]
        assert "s07" not in found and len(found) == 5
        sent.clear()
        assert reader.identify(vectors[3], top=1, fingerprint="fp")[0][0] == "s03"
        assert len(sent) == 1  # up to date again


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_an_identification_searches_the_index_once(tmp_path, store, request, monkeypatch):
    """Each store's path (one statement for PostgreSQL, a read transaction for SQLite) searches once."""
    from redimnet.speakers.vectors import ExactIndex

    location = str(tmp_path / "s.db") if store == "sqlite" else request.getfixturevalue("postgres_url")
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((30, 16))
    searches = []
    original = ExactIndex.search

    def counting(self, *args, **kwargs):
        searches.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ExactIndex, "search", counting)
    with open_store(location) as db:
        for k, vector in enumerate(vectors):
            db.enroll(f"s{k:02d}", vector[None, :], [f"u{k}"], "fp")
        db.identify(vectors[0], top=3, fingerprint="fp")
        for k in (4, 9, 22):
            searches.clear()
            assert db.identify(vectors[k], top=3, fingerprint="fp")[0][0] == f"s{k:02d}"
            assert len(searches) == 1


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_an_index_is_built_in_the_order_speakers_were_first_enrolled(tmp_path, store, request):
    """PostgreSQL stores a rewritten row at the end of its table (and a sequential scan may start mid-table):
    the build reads in id order all the same, so a graph is built in one order from any store."""
    from redimnet.speakers.sql import _Source

    location = str(tmp_path / "s.db") if store == "sqlite" else request.getfixturevalue("postgres_url")
    rng = np.random.default_rng(6)
    with open_store(location) as db:
        for k in range(6):
            db.enroll(f"s{k}", rng.standard_normal((1, 8)), [f"u{k}"], "fp")
        db.enroll("s0", rng.standard_normal((1, 8)), ["again"], "fp")  # s0's row is written again
        with db._reading() as cursor:
            keys = np.concatenate([k for k, _ in _Source(db, cursor).changed_since(-1)])
            names = dict(db._execute(cursor, "SELECT id, name FROM speakers").fetchall())
    assert [names[int(k)] for k in keys] == [f"s{k}" for k in range(6)]
