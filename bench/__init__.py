"""Benchmark of the orchestration's cost against the bare work: `python -m bench.run`."""
