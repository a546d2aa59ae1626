"""The one error the benchmark raises: it cannot go on, and says why."""


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""
