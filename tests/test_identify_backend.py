"""Identification with a trained back-end: the back-end scores a shortlist found through the speaker index."""

import numpy as np
import pytest

from redimnet.evaluation.backend import train_backend
from redimnet.speakers.scorer import Scorer
from redimnet.speakers.sqlite import SpeakerDatabase

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

DIM = 16


def units(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def world():
    """Speakers around their own centres; a PLDA back-end trained on other speakers of the same kind."""
    rng = np.random.default_rng(0)

    def speakers(count, per):
        centres = units(rng.standard_normal((count, DIM)))
        return centres, centres[:, None, :] + 0.35 * rng.standard_normal((count, per, DIM)) / np.sqrt(DIM)

    _, training = speakers(60, 8)
    backend = train_backend(training.reshape(-1, DIM), np.repeat(np.arange(60), 8), kind="plda")
    centres, enrolled = speakers(120, 3)
    queries = centres + 0.35 * rng.standard_normal((120, DIM)) / np.sqrt(DIM)
    return backend, enrolled, queries


def full_scan(backend, store, embedding, top):
    """The back-end over every enrolled speaker: what identification gave before the shortlist."""
    names = [s.name for s in store.speakers()]
    scores = backend.score_sets([store.utterances(n)[1] for n in names], embedding[None, :])[0]
    order = sorted(range(len(names)), key=lambda i: (-scores[i], names[i]))[:top]
    return [(names[i], float(scores[i])) for i in order]


@pytest.mark.slow
def test_backend_scores_the_cosine_shortlist_from_the_index(tmp_path, world, monkeypatch):
    backend, enrolled, queries = world
    scorer = Scorer(backend)
    with SpeakerDatabase(tmp_path / "s.db") as db:
        for k, rows in enumerate(enrolled):
            db.enroll(f"spk{k:03d}", rows, [f"spk{k:03d}-{u}" for u in range(rows.shape[0])], "fp")
        read = []
        batched = SpeakerDatabase.utterance_embeddings
        monkeypatch.setattr(
            SpeakerDatabase, "utterance_embeddings", lambda db, names: read.append(list(names)) or batched(db, names)
        )
        single = []
        utterances = SpeakerDatabase.utterances
        monkeypatch.setattr(
            SpeakerDatabase, "utterances", lambda self, name: single.append(name) or utterances(self, name)
        )
        agree = 0
        for query in queries[:40]:
            read.clear()
            single.clear()
            got = scorer.rank(query, db, top=3, fingerprint="fp", candidates=20)
            assert single == []  # no speaker read one by one
            shortlist = [name for name, _ in db.identify(query, top=20)]
            assert len(read) == 1 and sorted(read[0]) == sorted(shortlist)  # the shortlist's recordings, in one read
            read.clear()
            scanned = full_scan(backend, db, query, top=3)
            expected = [(n, s) for n, s in scanned if n in shortlist][:3]
            assert [n for n, _ in got] == [n for n, _ in expected[: len(got)]] and len(got) == 3
            np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-9)
            agree += got[0][0] == scanned[0][0]
        assert agree == 40  # on these speakers the shortlist always holds the back-end's best
        # a shortlist as large as the store scores everyone: exactly the full scan
        query = queries[7]
        whole = scorer.rank(query, db, top=5, fingerprint="fp", candidates=500)
        assert whole == full_scan(backend, db, query, top=5)
        # top larger than the shortlist: the shortlist grows to top
        assert len(scorer.rank(query, db, top=30, fingerprint="fp", candidates=5)) == 30


def test_a_speaker_removed_while_the_backend_reads_is_left_out(tmp_path, world, monkeypatch):
    backend, enrolled, queries = world
    with SpeakerDatabase(tmp_path / "s.db") as db:
        for k, rows in enumerate(enrolled[:10]):
            db.enroll(f"spk{k:03d}", rows, [f"u{u}" for u in range(rows.shape[0])], "fp")
        identify = SpeakerDatabase.identify

        def racing(self, *args, **kwargs):  # another client removes spk004 between the shortlist and the read
            found = identify(self, *args, **kwargs)
            with SpeakerDatabase(tmp_path / "s.db") as other:
                if other.has_speaker("spk004"):
                    other.remove("spk004")
            return found

        monkeypatch.setattr(SpeakerDatabase, "identify", racing)
        got = Scorer(backend).rank(queries[4], db, top=10, fingerprint="fp")
        assert sorted(name for name, _ in got) == [f"spk{k:03d}" for k in range(10) if k != 4]


class OneByOne:
    """A store without the batched read (another implementation of the protocol): asked once per name."""

    def __init__(self, db):
        self.db, self.asked = db, []

    def identify(self, *args, **kwargs):
        return self.db.identify(*args, **kwargs)

    def utterances(self, name):
        self.asked.append(name)
        return self.db.utterances(name)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_batched_read_equals_reading_each_speaker(tmp_path, world, kind, request):
    from redimnet.speakers.store import utterance_embeddings
    from redimnet.speakers.stores import open_store

    backend, enrolled, queries = world
    location = str(tmp_path / "s.db") if kind == "sqlite" else request.getfixturevalue("postgres_url")
    with open_store(location) as db:
        for k, rows in enumerate(enrolled[:12]):
            db.enroll(f"spk{k:03d}", rows[: 1 + k % 3], [f"u{u}" for u in range(1 + k % 3)], "fp")
        db.remove("spk005")
        names = ["spk011", "spk005", "spk000", "nobody", "spk007"]
        got = utterance_embeddings(db, names)
        assert sorted(got) == ["spk000", "spk007", "spk011"]  # the removed and the unknown are left out
        for name, rows in got.items():
            np.testing.assert_array_equal(rows, db.utterances(name)[1])  # same rows, same order
        assert got["spk011"].shape == (3, DIM) and got["spk000"].shape == (1, DIM)
        plain = OneByOne(db)
        slow = utterance_embeddings(plain, names)
        assert plain.asked == names and sorted(slow) == sorted(got)
        for name in got:
            np.testing.assert_array_equal(slow[name], got[name])
        assert [n for n, _ in Scorer(backend).rank(queries[7], plain, top=3, fingerprint="fp")] == [
            n for n, _ in Scorer(backend).rank(queries[7], db, top=3, fingerprint="fp")
        ]
