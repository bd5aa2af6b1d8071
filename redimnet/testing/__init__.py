"""Helpers for tests and benchmarks (not needed to use redimnet).

* :mod:`.synth` -- synthetic voices, corpora and conversations (``python -m redimnet.testing.synth``);
* :mod:`.postgres` -- a throw-away PostgreSQL server for the store's tests.
"""
