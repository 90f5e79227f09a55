"""Benchmarks for design.md's targets; each prints its figure next to the bar and a baseline."""
