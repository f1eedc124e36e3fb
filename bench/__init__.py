"""Benchmarks: ``python -m bench.run_all`` (``make bench``); see bench/README.md."""
