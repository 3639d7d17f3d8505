"""Benchmarks behind the README figures: each prints a table and writes JSON to results/."""
