"""Benchmarks: ``python -m bench NAME``; each prints one JSON line of figures last."""
