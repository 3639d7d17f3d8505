"""Serving benchmarks: catdog's service against the seed projects' way of serving, on real photos.

Every script here starts its servers as subprocesses on free ports of 127.0.0.1, loads them with
a bounded client (request count and wall time), stops them in `finally`, prints a table and writes
JSON to `benchmarks/results/serve_*.json`. `run_all.py` runs the whole comparison in one go.
"""
