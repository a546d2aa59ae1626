"""The load benchmark: `uv run python -m bench` (see README, "Benchmark")."""
