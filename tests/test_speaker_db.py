"""The speaker database: enrol, identify, list, remove; concurrent readers; killed writers; the CLI verbs."""

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import soundfile as sf

import redimnet
from redimnet.models.fingerprint import model_fingerprint
from redimnet.speakers.sqlite import SpeakerDatabase, SpeakerDatabaseError

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def units(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_enroll_identify_list_remove(tmp_path):
    rng = np.random.default_rng(0)
    centres = {name: rng.standard_normal(32) for name in ["ann", "bob", "cid"]}
    with SpeakerDatabase(tmp_path / "s.db") as db:
        for name, centre in centres.items():
            db.enroll(name, centre + 0.3 * rng.standard_normal((3, 32)), [f"{name}{i}" for i in range(3)], "fp")
        extra = centres["bob"] + 0.3 * rng.standard_normal((2, 32))
        assert db.enroll("bob", extra, ["bob3", "bob4"], "fp") == 5
        ids, stored = db.utterances("bob")
        assert ids == ["bob0", "bob1", "bob2", "bob3", "bob4"] and stored.shape == (5, 32)
        np.testing.assert_allclose(db.speaker_model("bob"), units(stored).mean(axis=0), atol=1e-6)
        for name, centre in centres.items():
            best = db.identify(centre + 0.3 * rng.standard_normal(32), top=2, fingerprint="fp")
            assert best[0][0] == name and len(best) == 2 and best[0][1] > best[1][1]
            model = db.speaker_model(name)
            query = centre + 0.1
            expected = float(units([query])[0] @ model / np.linalg.norm(model))
            assert dict(db.identify(query, top=3))[name] == pytest.approx(expected)
        assert [(s.name, s.utterances) for s in db.speakers()] == [("ann", 3), ("bob", 5), ("cid", 3)]
        assert db.remove("bob") == 5
        assert [s.name for s in db.speakers()] == ["ann", "cid"]
        with pytest.raises(SpeakerDatabaseError, match="no speaker named 'bob'.*enrolled: ann, cid"):
            db.remove("bob")
        assert db.check()
        assert db.connection.execute("SELECT COUNT(*) FROM utterances").fetchone()[0] == 6
        assert db.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_refuses_other_models_and_bad_input(tmp_path, store, request):
    from redimnet.speakers.stores import open_store

    location = str(tmp_path / "s.db") if store == "sqlite" else request.getfixturevalue("postgres_url")
    with open_store(location) as db:
        db.enroll("ann", np.ones((1, 8)), ["a"], "model-1")
        with pytest.raises(SpeakerDatabaseError, match="another model"):
            db.enroll("ann", np.ones((1, 8)), ["b"], "model-2")
        with pytest.raises(SpeakerDatabaseError, match="8-dimensional"):
            db.enroll("bob", np.ones((1, 4)), ["c"], "model-1")
        with pytest.raises(SpeakerDatabaseError, match="another model"):
            db.identify(np.ones(8), fingerprint="model-2")
        with pytest.raises(SpeakerDatabaseError, match="zero or non-finite"):
            db.enroll("bob", np.zeros((1, 8)), ["z"], "model-1")
        with pytest.raises(SpeakerDatabaseError, match="empty"):
            db.enroll(" ", np.ones((1, 8)), ["z"])
        with pytest.raises(SpeakerDatabaseError, match="no speaker named 'zed'.*enrolled: ann"):
            db.remove("zed")
        assert [s.utterances for s in db.speakers()] == [1]  # nothing half-written by the failures


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_speakers_come_a_page_at_a_time(tmp_path, store, request):
    from redimnet.errors import InvalidArgumentError
    from redimnet.speakers.store import speaker_pages
    from redimnet.speakers.stores import open_store

    location = str(tmp_path / "s.db") if store == "sqlite" else request.getfixturevalue("postgres_url")
    names = [f"spk{i:03d}" for i in (7, 3, 11, 0, 5, 9, 1)]
    with open_store(location) as db:
        for i, name in enumerate(names):
            db.enroll(name, np.ones((1 + i % 2, 8)) + i, [f"{name}-{j}" for j in range(1 + i % 2)])
        everyone = [(s.name, s.utterances) for s in db.speakers()]
        assert [n for n, _ in everyone] == sorted(names)
        assert [s.name for s in db.speakers(limit=3)] == sorted(names)[:3]
        assert [s.name for s in db.speakers(limit=2, after="spk005")] == ["spk007", "spk009"]
        assert [s.name for s in db.speakers(after="spk004")] == ["spk005", "spk007", "spk009", "spk011"]
        assert db.speakers(limit=5, after="spk011") == [] and db.speakers(after="zzz") == []
        pages = list(speaker_pages(db, page=3))
        assert [len(page) for page in pages] == [3, 3, 1]
        assert [(s.name, s.utterances) for page in pages for s in page] == everyone
        assert [len(page) for page in speaker_pages(db, page=7)] == [7]  # a full last page, then an empty read
        assert [s.name for page in speaker_pages(db, after="spk007", page=2) for s in page] == ["spk009", "spk011"]
        for bad in (0, -1, True, 2.5):
            with pytest.raises(InvalidArgumentError, match="at least 1 speaker"):
                db.speakers(limit=bad)
        with pytest.raises(InvalidArgumentError, match="last speaker name"):
            db.speakers(after=5)


def test_refuses_what_is_not_a_speaker_database(tmp_path):
    with SpeakerDatabase(tmp_path / "empty.db") as db:
        with pytest.raises(SpeakerDatabaseError, match="no enrolled speakers"):
            db.identify(np.ones(8))
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SpeakerDatabaseError, match="not a usable speaker database"):
        SpeakerDatabase(tmp_path / "junk.db")
    with pytest.raises(SpeakerDatabaseError, match="does not exist"):
        SpeakerDatabase(tmp_path / "absent.db", create=False)


def test_fingerprint_follows_the_weights():
    a = redimnet.build("b0")
    b = redimnet.build("b0")
    assert model_fingerprint(a) == model_fingerprint(a)
    assert model_fingerprint(a) != model_fingerprint(b)


def test_concurrent_reader_sees_consistent_snapshots(tmp_path):
    path = tmp_path / "s.db"
    rng = np.random.default_rng(1)
    with SpeakerDatabase(path) as db:
        db.enroll("seed", rng.standard_normal((1, 16)), ["s0"])
    problems, seen, stop, ready = [], [], threading.Event(), threading.Event()

    def reader():
        try:
            read_loop()
        except Exception as error:  # reported by the assertions below
            problems.append(repr(error))
        finally:
            ready.set()

    def read_loop():
        query = np.random.default_rng(2).standard_normal(16)
        with SpeakerDatabase(path) as db:
            ready.set()
            while not stop.is_set():
                connection = db.connection
                connection.execute("BEGIN")
                speakers = connection.execute("SELECT id, count FROM speakers").fetchall()
                for speaker_id, count in speakers:
                    actual = connection.execute(
                        "SELECT COUNT(*) FROM utterances WHERE speaker_id=?", (speaker_id,)
                    ).fetchone()[0]
                    if actual != count:
                        problems.append((speaker_id, count, actual))
                connection.execute("COMMIT")
                seen.append(sum(c for _, c in speakers))
                db.identify(query, top=3)

    thread = threading.Thread(target=reader)
    thread.start()
    ready.wait(timeout=60)
    try:
        with SpeakerDatabase(path) as db:
            for i in range(40):
                db.enroll(f"spk{i % 5}", rng.standard_normal((4, 16)), [f"u{i}-{k}" for k in range(4)])
                time.sleep(0.002)  # let the reader in between writes
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not problems
    assert len(seen) > 1 and all(total % 4 == 1 for total in seen)  # whole enrolments only
    assert seen == sorted(seen)
    with SpeakerDatabase(path) as db:
        assert db.check() and sum(s.utterances for s in db.speakers()) == 161


def test_a_writer_killed_mid_transaction_changes_nothing(tmp_path):
    path = tmp_path / "s.db"
    with SpeakerDatabase(path) as db:
        db.enroll("ann", np.ones((2, 8)), ["a", "b"])
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from redimnet.speakers.sqlite import SpeakerDatabase
        db = SpeakerDatabase({str(path)!r})
        original = db.connection.execute
        def work(cursor):
            cursor.execute("INSERT INTO speakers(name, count, mean, created, updated) VALUES ('ghost', 1, x'00', 0, 0)")
            cursor.execute("UPDATE speakers SET count = 99 WHERE name = 'ann'")
            os.kill(os.getpid(), signal.SIGKILL)  # dies before COMMIT
        db._write(work)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -9, result.stderr.decode()
    with SpeakerDatabase(path) as db:
        assert db.check()
        assert [(s.name, s.utterances) for s in db.speakers()] == [("ann", 2)]
        db.enroll("bob", np.ones((1, 8)), ["c"])  # and it is writable again
        assert [s.name for s in db.speakers()] == ["ann", "bob"]


@pytest.fixture(scope="module")
def checkpoint(b0_model_and_checkpoint):
    return b0_model_and_checkpoint[1]


@pytest.mark.slow
def test_cli_verbs(tmp_path, checkpoint, capsys):
    from redimnet import cli

    rng = np.random.default_rng(2)
    voices = {}
    for name in ["ann", "bob"]:
        base = rng.standard_normal(8000).astype(np.float32) * 0.1
        voices[name] = base
        for i in range(2):
            sf.write(tmp_path / f"{name}{i}.wav", base + 0.01 * rng.standard_normal(8000), 16000, subtype="FLOAT")
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVE")

    def main(*argv):
        return cli.main(list(argv))

    db = str(tmp_path / "voices.db")
    common = ["--checkpoint", str(checkpoint), "--db", db, "--no-optimize"]
    assert main("enroll", "ann", str(tmp_path / "ann0.wav"), *common) == 0
    assert main("enroll", "bob", str(tmp_path / "bob0.wav"), str(tmp_path / "broken.wav"), *common) == 1
    err = capsys.readouterr().err
    assert "broken.wav" in err and "not a readable audio file" in err
    assert main("identify", str(tmp_path / "bob1.wav"), "--top", "2", "--json", *common) == 0
    ranking = __import__("json").loads(capsys.readouterr().out)
    assert [r["speaker"] for r in ranking] == ["bob", "ann"]
    assert main("speakers", "list", "--db", db) == 0
    out = capsys.readouterr().out
    assert "ann" in out and "bob" in out
    assert main("speakers", "--db", db) == 0  # the action defaults to list
    assert capsys.readouterr().out == out
    assert main("speakers", "remove", "ann", "--db", db) == 0
    assert main("speakers", "remove", "ann", "--db", db) == 2
    assert "no speaker named 'ann'" in capsys.readouterr().err
    assert (
        main(
            "identify",
            str(tmp_path / "ann1.wav"),
            "--checkpoint",
            str(checkpoint),
            "--db",
            str(tmp_path / "nowhere.db"),
        )
        == 2
    )
    other = redimnet.save_checkpoint(redimnet.build("b0"), tmp_path / "other.pt")
    assert main("identify", str(tmp_path / "ann1.wav"), "--checkpoint", str(other), "--db", db) == 2
    assert "another model" in capsys.readouterr().err


def test_speakers_list_times_are_iso_utc(tmp_path, capsys):
    """Table and JSON give the same ISO-8601 UTC time stamp of the last enrolment."""
    import json
    from unittest import mock

    from redimnet import cli

    db = tmp_path / "voices.db"
    with mock.patch("time.time", return_value=1764079375.6):  # 2025-11-25 14:02:55.6 UTC
        with SpeakerDatabase(db) as database:
            database.enroll("ann", np.ones((1, 8)), ["a"])
    assert cli.main(["speakers", "list", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"speaker": "ann", "recordings": 1, "updated": "2025-11-25T14:02:55Z"}
    ]
    assert cli.main(["speakers", "--db", str(db)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["ann", "1", "2025-11-25T14:02:55Z"]


def test_speakers_list_pages(tmp_path, capsys, monkeypatch):
    """The list is read a page at a time (the same output as one read); --limit/--after give one page."""
    import json

    from redimnet import cli
    from redimnet.speakers import store

    db = tmp_path / "voices.db"
    names = [f"s{i:02d}" for i in range(7)]
    with SpeakerDatabase(db) as database:
        for i, name in enumerate(names):
            database.enroll(name, np.ones((1, 8)) + i, ["a"])
    assert cli.main(["speakers", "list", "--db", str(db), "--json"]) == 0
    whole_json = capsys.readouterr().out
    assert cli.main(["speakers", "list", "--db", str(db)]) == 0
    whole_table = capsys.readouterr().out
    assert [line.split()[0] for line in whole_table.splitlines()[1:]] == names
    monkeypatch.setattr(store, "PAGE_SIZE", 3)
    monkeypatch.setattr(store.speaker_pages, "__defaults__", (None, 3))
    reads = []
    original = SpeakerDatabase.speakers
    monkeypatch.setattr(SpeakerDatabase, "speakers", lambda self, **kw: reads.append(kw) or original(self, **kw))
    assert cli.main(["speakers", "list", "--db", str(db), "--json"]) == 0
    assert capsys.readouterr().out == whole_json and [r["limit"] for r in reads] == [3, 3, 3]
    assert cli.main(["speakers", "list", "--db", str(db)]) == 0
    assert capsys.readouterr().out == whole_table
    assert cli.main(["speakers", "list", "--db", str(db), "--limit", "2", "--after", "s02"]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["s03", "s04"]
    assert "--after 's04'" in err
    assert cli.main(["speakers", "list", "--db", str(db), "--json", "--limit", "5", "--after", "s04"]) == 0
    assert [row["speaker"] for row in json.loads(capsys.readouterr().out)] == ["s05", "s06"]
    assert cli.main(["speakers", "list", "--db", str(db), "--json", "--after", "s06"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli.main(["speakers", "list", "--db", str(db), "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err


# --- one naming policy: NFC, visible characters only; stores written before it keep working -----------------------
def test_look_alike_names_are_one_speaker_or_refused(tmp_path):
    from redimnet._utils.names import UnsafeNameError

    rng = np.random.default_rng(3)
    composed, decomposed = "Jos\u00e9", "Jose\u0301"  # the same on screen
    with SpeakerDatabase(tmp_path / "s.db") as db:
        db.enroll(composed, rng.standard_normal((1, 8)), ["a"], "fp")
        assert db.enroll(decomposed, rng.standard_normal((1, 8)), ["b"], "fp") == 2
        assert db.enroll(f"  {decomposed} ", rng.standard_normal((1, 8)), ["c"], "fp") == 3
        assert [s.name for s in db.speakers()] == [composed]
        assert db.utterances(decomposed)[0] == ["a", "b", "c"] and db.has_speaker(decomposed)
        for invisible in ("Al\u200bice", "\ufeffBob", "Eve\U000e0041", "Ma\u202eX", "A\u00a0B", "Ann\u2060", "x\ufe0f"):
            with pytest.raises(UnsafeNameError, match=r"contains .* U\+[0-9A-F]{4,5}"):
                db.enroll(invisible, rng.standard_normal((1, 8)), ["d"], "fp")
        assert db.remove(decomposed) == 3 and db.speakers() == []


def legacy_database(path, names):
    """A store as an older redimnet left it: the names exactly as given, no record of the naming policy."""
    import sqlite3

    rng = np.random.default_rng(4)
    with SpeakerDatabase(path) as db:
        for number, _ in enumerate(names):
            db.enroll(f"speaker{number}", rng.standard_normal((1, 8)), [f"u{number}"], "fp")
    connection = sqlite3.connect(str(path))
    with connection:
        for number, name in enumerate(names):
            connection.execute("UPDATE speakers SET name=? WHERE name=?", (name, f"speaker{number}"))
        connection.execute("DELETE FROM meta WHERE key IN ('names', 'name_problems')")
    connection.close()


def test_names_stored_before_the_policy_are_normalised_on_open(tmp_path, recwarn):
    path = tmp_path / "old.db"
    legacy_database(path, ["Jose\u0301", "Zoe\u0308", "plain"])
    with SpeakerDatabase(path) as db:
        assert sorted(s.name for s in db.speakers()) == sorted(["Jos\u00e9", "Zo\u00eb", "plain"])
        assert db.utterances("Jos\u00e9")[0] == ["u0"] and db.utterances("Jose\u0301")[0] == ["u0"]
        best = db.identify(db.speaker_model("Zo\u00eb"), top=1, fingerprint="fp")
        assert best[0][0] == "Zo\u00eb"  # the speaker index follows the rename
    assert not [w for w in recwarn if "normalised" in str(w.message)]


def test_names_that_cannot_be_normalised_are_reported_and_stay_removable(tmp_path):
    path = tmp_path / "old.db"
    legacy_database(path, ["Jos\u00e9", "Jose\u0301", "Al\u200bice", "Bob"])
    with pytest.warns(UserWarning, match=r"2 speaker name\(s\) stored before names were normalised") as caught:
        db = SpeakerDatabase(path)
    message = str(caught[0].message)
    assert "Jose\\u0301 is the same name as Jos\\xe9 once normalised" in message
    assert "Al\\u200bice contains the invisible formatting character U+200B (ZERO WIDTH SPACE)" in message
    assert str(path) in message and "redimnet speakers remove NAME" in message
    with db:
        assert db.utterances("Jos\u00e9")[0] == ["u0"]  # the composed one answers to its name
        assert db.utterances("Jose\u0301")[0] == ["u1"]  # the kept one, by its exact stored name
        assert db.has_speaker("Al\u200bice") and db.remove("Al\u200bice") == 1
    with pytest.warns(UserWarning, match=r"1 speaker name\(s\)"):  # reported at every opening until resolved
        db = SpeakerDatabase(path)
    with db:
        assert db.remove("Jose\u0301") == 1
    with SpeakerDatabase(path) as db:  # resolved: no warning, and the mark is kept
        assert sorted(s.name for s in db.speakers()) == ["Bob", "Jos\u00e9"]
