"""The parts of `manage.py status` that other apps own, registered by them (core imports no app).

`status` reports the database, the backups and the disk itself, then each part here: `gather`
adds its keys to the report (it sees the report so far: whether the database answered, whether
its tables exist), and `lines` turns those keys into the text report's lines. An app adds its
part in its AppConfig.ready, as `core.health.REPORTED_CHECKS` is filled for `/readyz`.
"""

from collections.abc import Callable
from dataclasses import dataclass

Lines = list[tuple[str, str]]


@dataclass(frozen=True)
class StatusPart:
    gather: Callable[[dict], dict]
    lines: Callable[[dict], Lines]


STATUS_PARTS: dict[str, StatusPart] = {}


def register_status_part(
    name: str, *, gather: Callable[[dict], dict], lines: Callable[[dict], Lines]
) -> None:
    STATUS_PARTS[name] = StatusPart(gather=gather, lines=lines)
