"""Benchmarks for the targets P1-P6 (docs/benchmarks.md); each prints its figure next to the bar and a baseline."""
