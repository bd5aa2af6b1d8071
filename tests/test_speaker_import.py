"""Bulk import (``redimnet speakers import``) and the SQLite schema's migration."""

import json
import sqlite3

import numpy as np
import pytest

from redimnet import cli
from redimnet.embedding.io import save_embeddings
from redimnet.speakers.bulk import import_arrays, import_embeddings, speaker_names
from redimnet.speakers.sql import row_bytes
from redimnet.speakers.sqlite import PAGE_SIZE, SCHEMA_VERSION, SpeakerDatabase, SpeakerDatabaseError
from redimnet.speakers.stores import open_store

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def corpus(rng, speakers=30, per=3, dim=12):
    ids, rows = [], []
    for s in range(speakers):
        centre = rng.standard_normal(dim)
        for u in range(per):
            ids.append(f"spk{s:02d}/session{u % 2}/utt{u}.wav")
            rows.append(centre + 0.3 * rng.standard_normal(dim))
    return ids, np.asarray(rows, dtype=np.float32)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_import_equals_enrolling_one_by_one(tmp_path, store, request):
    rng = np.random.default_rng(0)
    ids, vectors = corpus(rng)
    location = str(tmp_path / "imported.db") if store == "sqlite" else request.getfixturevalue("postgres_url")
    with open_store(location) as imported, SpeakerDatabase(tmp_path / "enrolled.db") as enrolled:
        # a speaker already enrolled gets the imported recordings added to theirs (in the 4th batch)
        imported.enroll("spk23", vectors[:1] * 2, ["earlier"], "fp")
        enrolled.enroll("spk23", vectors[:1] * 2, ["earlier"], "fp")
        report = import_arrays(imported, ids, vectors, speaker_names(ids), batch=7, fingerprint="fp")
        assert (report.speakers, report.new, report.updated, report.recordings) == (30, 29, 1, 90)
        assert report.batches == 5  # 30 speakers, 7 per transaction
        for s in range(30):
            name = f"spk{s:02d}"
            enrolled.enroll(name, vectors[3 * s : 3 * s + 3], ids[3 * s : 3 * s + 3], "fp")
        assert [(s.name, s.utterances) for s in imported.speakers()] == [
            (s.name, s.utterances) for s in enrolled.speakers()
        ]
        for s in enrolled.speakers():
            np.testing.assert_allclose(imported.speaker_model(s.name), enrolled.speaker_model(s.name), atol=1e-6)
            assert imported.utterances(s.name)[0] == enrolled.utterances(s.name)[0]
            np.testing.assert_array_equal(imported.utterances(s.name)[1], enrolled.utterances(s.name)[1])
        query = vectors[10] + 0.1
        got, expected = imported.identify(query, top=3), enrolled.identify(query, top=3)
        assert [n for n, _ in got] == [n for n, _ in expected]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-6)
        assert imported.revision() == 1 + 5  # one enrolment, then one revision per batch
        assert imported.check()


def test_speakers_with_one_and_with_several_recordings_get_the_means_enrolment_gives(tmp_path):
    """Import sums one-recording speakers by copying and the others by a grouped sum: both match enrol."""
    rng = np.random.default_rng(4)
    counts = [1, 3, 1, 1, 2, 1, 4, 1, 1, 2] * 3
    ids, rows = [], []
    for s, count in enumerate(counts):
        ids += [f"spk{s:02d}/u{u}" for u in range(count)]
        rows.append(rng.standard_normal((count, 8)) * rng.uniform(0.5, 30))
    vectors = np.concatenate(rows).astype(np.float32)
    with SpeakerDatabase(tmp_path / "i.db") as imported, SpeakerDatabase(tmp_path / "e.db") as enrolled:
        import_arrays(imported, ids, vectors, speaker_names(ids), batch=4, fingerprint="fp")
        start = 0
        for s, count in enumerate(counts):
            enrolled.enroll(f"spk{s:02d}", vectors[start : start + count], ids[start : start + count], "fp")
            start += count
        for s, count in enumerate(counts):
            name = f"spk{s:02d}"
            assert imported.utterances(name)[0] == enrolled.utterances(name)[0]
            np.testing.assert_allclose(imported.speaker_model(name), enrolled.speaker_model(name), atol=1e-6)
            if count == 1:  # the mean of one recording is that recording, scaled to unit length
                one = vectors[ids.index(f"{name}/u0")]
                np.testing.assert_allclose(imported.speaker_model(name), one / np.linalg.norm(one), atol=1e-6)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_import_into_an_empty_store_merges_what_another_writer_enrols_meanwhile(tmp_path, store, request):
    """Into an empty store the import skips looking its names up, only while nobody else writes in between."""
    rng = np.random.default_rng(3)
    ids, vectors = corpus(rng, speakers=12)
    location = str(tmp_path / "imported.db") if store == "sqlite" else request.getfixturevalue("postgres_url")
    with open_store(location) as imported, open_store(location) as other:

        def meanwhile(done, total):
            if done == 12:  # after the first batch (4 speakers' 12 recordings), another client enrols a speaker
                # of the third batch
                other.enroll("spk09", vectors[:1], ["elsewhere"], "fp")

        report = import_arrays(
            imported, ids, vectors, speaker_names(ids), batch=4, fingerprint="fp", progress=meanwhile
        )
        assert (report.new, report.updated, report.batches) == (11, 1, 3)
        assert dict((s.name, s.utterances) for s in imported.speakers())["spk09"] == 4
        assert imported.utterances("spk09")[0] == ["elsewhere"] + ids[27:30]
        assert imported.check()


def test_bulk_name_checks_agree_with_the_one_by_one_rules():
    from redimnet._utils.names import MAX_NAME_LENGTH, UnsafeNameError, check_speaker_name, plain_names
    from redimnet.evaluation.score_norm import speakers_of
    from redimnet.speakers.bulk import _first_components

    def filed_as_is(name):
        try:
            return check_speaker_name(name) == name
        except UnsafeNameError:
            return False

    plain = ["alice", "Bob Smith", "id10270", "x" * MAX_NAME_LENGTH, "a-b_c.d!"]
    assert plain_names(plain) and all(filed_as_is(n) for n in plain)
    refused_or_changed = (" alice", "alice ", "", "x" * (MAX_NAME_LENGTH + 1), "tab\there", "zero\u200bwidth")
    for odd in refused_or_changed + ("Jos\u00e9",):  # the last one is fine, but not plain ASCII
        assert not plain_names(plain + [odd]), odd  # so every name is checked one by one
    assert not any(filed_as_is(n) for n in refused_or_changed)
    assert plain_names([])
    ids = ["alice/1.wav", "bob/2024/call.wav", "c/d"]
    assert _first_components(ids) == speakers_of(ids) == ["alice", "bob", "c"]
    for odd in ("./dave/1.wav", "/erin/2.wav", "win\\frank\\3.wav", "flat.wav", "/x"):
        assert _first_components(ids + [odd]) is None  # read one by one (with speaker_of's messages)


def test_speakers_import_command(tmp_path, capsys):
    rng = np.random.default_rng(1)
    ids, vectors = corpus(rng, speakers=12)
    embeddings = save_embeddings(tmp_path / "e.npz", ids, vectors, model="0123456789abcdef")
    db = str(tmp_path / "s.db")
    assert cli.main(["speakers", "import", str(embeddings), "--db", db, "--batch", "5"]) == 0
    out = capsys.readouterr().out
    assert "imported 36 recording(s) of 12 speaker(s) (12 new, 0 already enrolled)" in out and "3 transaction" in out
    assert "speaker index: exact" in out
    with SpeakerDatabase(db) as database:
        assert database.built_with() == "0123456789abcdef"  # the file's model: other models are refused
        assert [s.utterances for s in database.speakers()] == [3] * 12
    # the same ids with a mapping file: each session its own speaker
    utt2spk = tmp_path / "utt2spk"
    utt2spk.write_text("".join(f"{i} {i.split('/')[0]}-{i.split('/')[1]}\n" for i in ids))
    db2 = str(tmp_path / "s2.db")
    assert cli.main(["speakers", "import", str(embeddings), "--db", db2, "--utt2spk", str(utt2spk), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["speakers"], result["recordings"], result["index"]) == (24, 36, "exact")
    with SpeakerDatabase(db2) as database:
        assert database.speakers()[0].name == "spk00-session0" and database.speakers()[0].utterances == 2
    # each id its own speaker (e.g. a cohort file)
    db3 = str(tmp_path / "s3.db")
    assert cli.main(["speakers", "import", str(embeddings), "--db", db3, "--speaker-from", "id", "--no-index"]) == 0
    assert "speaker index" not in capsys.readouterr().out
    with SpeakerDatabase(db3) as database:
        assert database.count() == (36, 36)


def test_import_checks_everything_before_the_first_write(tmp_path, capsys):
    rng = np.random.default_rng(2)
    ids, vectors = corpus(rng, speakers=4)
    db = tmp_path / "s.db"
    with SpeakerDatabase(db) as database:
        bad_name = ids[:-1] + ["bad\x1bname/x.wav"]
        with pytest.raises(SpeakerDatabaseError, match="1 speaker name.*control character.*nothing was imported"):
            import_arrays(database, bad_name, vectors, speaker_names(bad_name), batch=1)
        zero = vectors.copy()
        zero[-1] = 0
        with pytest.raises(SpeakerDatabaseError, match="spk03/session0/utt2.wav.*all zeros.*nothing was imported"):
            import_arrays(database, ids, zero, speaker_names(ids), batch=1)
        with pytest.raises(SpeakerDatabaseError, match="no directory part"):
            speaker_names(["flat.wav"])
        assert database.count() == (0, 0) and database.revision() == 0
        database.enroll("spk00", vectors[:1], ["x"], "model-a")
    path = save_embeddings(tmp_path / "e.npz", ids, vectors, model="model-b")
    assert cli.main(["speakers", "import", str(path), "--db", str(db)]) == 2
    assert "another model" in capsys.readouterr().err
    with SpeakerDatabase(db) as database:
        with pytest.raises(SpeakerDatabaseError, match="written by model model-b, not model-a"):
            import_embeddings(database, path, fingerprint="model-a")
        assert database.count() == (1, 1)
    assert cli.main(["speakers", "import", "--db", str(db)]) == 2
    assert "needs the EMBEDDINGS file" in capsys.readouterr().err


def test_a_version_1_database_is_migrated_in_place(tmp_path):
    """Files written before the speaker index existed open, keep every speaker, and gain the revision."""
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path)
    connection.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE speakers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, count INTEGER NOT NULL,
                               mean BLOB NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
        CREATE TABLE utterances (id INTEGER PRIMARY KEY,
                                 speaker_id INTEGER NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
                                 utterance TEXT NOT NULL, embedding BLOB NOT NULL, added REAL NOT NULL);
        CREATE INDEX utterances_by_speaker ON utterances(speaker_id);
        INSERT INTO meta VALUES ('schema_version', '1'), ('dim', '4'), ('model', 'fp');
        """
    )
    for i, name in enumerate(["ann", "bob"]):
        unit = np.eye(4)[i]
        connection.execute(
            "INSERT INTO speakers(name, count, mean, created, updated) VALUES (?, 1, ?, 0, 0)", (name, unit.tobytes())
        )
        connection.execute(
            "INSERT INTO utterances(speaker_id, utterance, embedding, added) VALUES (?, 'u', ?, 0)",
            (i + 1, unit.astype(np.float32).tobytes()),
        )
    connection.commit()
    old_page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    assert old_page_size != PAGE_SIZE  # SQLite's default; the store keeps it
    with SpeakerDatabase(path) as db:
        assert db.connection.execute("PRAGMA page_size").fetchone()[0] == old_page_size
        assert db.connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION
        )
        assert db.identify(np.array([0.1, 1, 0, 0]), top=2, fingerprint="fp")[0][0] == "bob"
        db.remove("bob")
        db.enroll("cid", np.array([[0, 0.2, 1, 0]]), ["c"], "fp")
        assert [n for n, _ in db.identify(np.array([0, 1, 0, 0]), top=5)] == ["cid", "ann"]
        assert db.revision() == 2 and db.check()


def test_a_new_store_gets_the_larger_page_size_before_its_first_table(tmp_path):
    with SpeakerDatabase(tmp_path / "new.db") as db:
        db.enroll("ann", np.eye(4)[:1], ["u"])
    connection = sqlite3.connect(tmp_path / "new.db")
    assert connection.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def test_row_bytes_are_each_rows_own_bytes():
    matrix = np.arange(24, dtype=np.float32).reshape(4, 6)
    for view in (matrix, matrix[:, ::2], matrix.T, np.asfortranarray(matrix), matrix[:0], matrix[:, :0]):
        assert row_bytes(view) == [row.tobytes() for row in np.asarray(view)]


def test_an_import_reads_and_writes_in_bounded_pieces_and_equals_enrolment(tmp_path, monkeypatch):
    """The file is read a few rows at a time, each transaction holds at most ``batch`` speakers and
    ``max(4 x batch, READ_ROWS)`` rows, whatever the file's size; speakers whose recordings lie apart in the file
    or outgrow a batch are merged as enrolment merges them."""
    from redimnet.embedding import io as embedding_io
    from redimnet.speakers import bulk

    monkeypatch.setattr(bulk, "READ_ROWS", 5)
    rng = np.random.default_rng(7)
    counts = [2, 1, 3, 14, 1, 2, 1, 1, 3, 2, 1, 2]  # spk03 alone is more than one batch of rows
    ids, rows = [], []
    for s, count in enumerate(counts):
        ids += [f"spk{s:02d}/u{u}" for u in range(count)]
        rows.append(rng.standard_normal((count, 8)))
    vectors = np.concatenate(rows).astype(np.float32)
    moved = [ids.index("spk01/u0"), ids.index("spk05/u1")]  # two recordings far from their speakers' others
    order = [r for r in range(len(ids)) if r not in moved] + moved
    ids, vectors = [ids[r] for r in order], vectors[order]
    path = save_embeddings(tmp_path / "e.npz", ids, vectors)
    read, written = [], []
    original_read, original_add = embedding_io._NpyRows.read, SpeakerDatabase.add_speakers

    def reading(self, count):
        read.append(count)
        return original_read(self, count)

    def adding(self, names, sums, counts, *rest, **options):
        written.append((len(names), int(np.sum(counts))))
        return original_add(self, names, sums, counts, *rest, **options)

    monkeypatch.setattr(embedding_io._NpyRows, "read", reading)
    monkeypatch.setattr(SpeakerDatabase, "add_speakers", adding)
    with SpeakerDatabase(tmp_path / "i.db") as imported, SpeakerDatabase(tmp_path / "e.db") as enrolled:
        report = import_embeddings(imported, path, batch=3, fingerprint="fp")
        assert max(read) == 5 and sum(read) == 2 * 2 * len(ids)  # ids and vectors, checked then imported
        assert all(speakers <= 3 and recordings <= 12 for speakers, recordings in written), written
        assert sum(recordings for _, recordings in written) == report.recordings == len(ids)
        assert report.new == len(counts) and report.batches == len(written) > len(counts) // 3
        for row, uid in enumerate(ids):
            enrolled.enroll(uid.split("/")[0], vectors[row : row + 1], [uid], "fp")
        assert [(s.name, s.utterances) for s in imported.speakers()] == [
            (s.name, s.utterances) for s in enrolled.speakers()
        ]
        for s in enrolled.speakers():
            np.testing.assert_allclose(imported.speaker_model(s.name), enrolled.speaker_model(s.name), atol=1e-6)
            assert imported.utterances(s.name)[0] == enrolled.utterances(s.name)[0]
        assert imported.check()


def test_speakers_get_their_ids_in_the_order_of_the_file(tmp_path):
    """Ids (and so the order in which an index is built) follow the rows, not the names' order."""
    ids = ["zed/a", "zed/b", "amy/a", "kim/a", "bob/a"]
    vectors = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with SpeakerDatabase(tmp_path / "i.db") as db:
        import_arrays(db, ids, vectors, speaker_names(ids), batch=2, fingerprint="fp")
        stored = db.connection.execute("SELECT name FROM speakers ORDER BY id").fetchall()
    # batches {zed, amy} and {kim, bob}, by name within a batch
    assert [name for (name,) in stored] == ["amy", "zed", "bob", "kim"]


def test_an_embeddings_file_read_in_blocks_is_the_file(tmp_path):
    from redimnet.embedding.io import EmbeddingsFileError, embeddings_blocks, load_embeddings

    rng = np.random.default_rng(1)
    ids = [f"s{i % 7}/utt{i}" for i in range(23)]
    path = save_embeddings(tmp_path / "e.npz", ids, rng.standard_normal((23, 6)))
    blocks = list(embeddings_blocks(path, 10))
    assert [len(i) for i, _ in blocks] == [10, 10, 3]
    whole_ids, whole = load_embeddings(path)
    assert np.concatenate([i for i, _ in blocks]).tolist() == whole_ids.tolist() == ids
    np.testing.assert_array_equal(np.concatenate([v for _, v in blocks]), whole)
    liar = tmp_path / "liar.npz"  # a header that claims more rows than its data holds
    np.savez(liar, ids=np.array(ids), embeddings=np.zeros((23, 6), np.float32))
    import zipfile

    with zipfile.ZipFile(liar) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["embeddings.npy"] = members["embeddings.npy"].replace(b"(23, 6)", b"(99, 6)")
    with zipfile.ZipFile(liar, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(EmbeddingsFileError, match="claims shape"):
        list(embeddings_blocks(liar, 10))
    np.savez(liar, vectors=np.zeros((2, 2)))
    with pytest.raises(EmbeddingsFileError, match="needs arrays 'ids' and 'embeddings'"):
        list(embeddings_blocks(liar, 10))


def test_a_utt2spk_mapping_is_indexed_once_for_a_file_read_in_blocks(tmp_path, monkeypatch):
    from redimnet.evaluation import score_norm
    from redimnet.speakers import bulk

    monkeypatch.setattr(bulk, "READ_ROWS", 4)
    built = []
    original = score_norm.SpeakerLookup.__init__

    def counting(self, utt2spk):
        built.append(len(utt2spk))
        original(self, utt2spk)

    monkeypatch.setattr(score_norm.SpeakerLookup, "__init__", counting)
    rng = np.random.default_rng(2)
    ids, vectors = corpus(rng, speakers=6)
    path = save_embeddings(tmp_path / "e.npz", ids, vectors)
    utt2spk = {i.replace(".wav", ""): f"person{n // 3}" for n, i in enumerate(ids)}  # extensions may differ
    with SpeakerDatabase(tmp_path / "s.db") as db:
        report = import_embeddings(db, path, utt2spk=utt2spk, fingerprint="fp")
        assert [(s.name, s.utterances) for s in db.speakers()] == [(f"person{k}", 3) for k in range(6)]
    assert built == [18] and report.recordings == 18  # 5 blocks, read twice: one index
    del utt2spk[ids[-1].replace(".wav", "")]
    with SpeakerDatabase(tmp_path / "t.db") as db, pytest.raises(SpeakerDatabaseError, match="no speaker in utt2spk"):
        import_embeddings(db, path, utt2spk=utt2spk, fingerprint="fp")
    with SpeakerDatabase(tmp_path / "t.db") as db:
        assert db.count() == (0, 0)  # checked before the first write
