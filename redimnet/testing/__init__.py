"""Helpers for tests and benchmarks (not needed to use redimnet)."""
