"""Helpers for tests and benchmarks (not needed to use redimnet).

* :mod:`.synth` -- synthetic voices, corpora and conversations (``python -m redimnet.testing.synth``);
* :mod:`.simulation` -- conversations with turns, overlap and channels from any voices;
* :mod:`.embedding_cache` -- an embedder that remembers window embeddings (diarize a recording twice);
* :mod:`.postgres` -- a throw-away PostgreSQL server for the store's tests.
"""
