"""Benchmarks. `make bench` runs them and rewrites docs/PERFORMANCE.md."""
