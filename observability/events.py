"""What the domain reports as it happens: one call where each event happens, counted here.

prometheus-client is imported on the first event, not when the domain imports this module (at
start-up): `serve` must set the multiprocess folder first (observability.metrics).
"""


def _count(name: str, amount: int = 1) -> None:
    from . import metrics

    getattr(metrics, name).inc(amount)


def login_failed(sender=None, credentials=None, request=None, **kwargs) -> None:
    """Django's user_login_failed: a password login that no backend accepted."""
    _count("LOGINS_FAILED")


def login_throttled() -> None:
    _count("LOGINS_THROTTLED")


def tokens_issued(amount: int = 1) -> None:
    _count("TOKENS_ISSUED", amount)


def tokens_revoked(amount: int = 1) -> None:
    _count("TOKENS_REVOKED", amount)


def idempotent_replay() -> None:
    _count("IDEMPOTENT_REPLAYS")


def idempotency_conflict() -> None:
    _count("IDEMPOTENCY_CONFLICTS")
