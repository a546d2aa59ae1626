"""The load benchmark: `uv run python -m bench` (docs/performance.md)."""
