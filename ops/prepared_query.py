"""Hot-path queries: the ORM's own SQL, compiled once per process, run with each call's values.

Turning a queryset into SQL costs more CPU than PostgreSQL spends answering it: about 0.3 ms per
query on the benchmark's machine, against 0.1 ms for the whole round trip (README, "Benchmark").
The few queries that every request makes (the token check, a note, a page of notes) are built
once as ordinary querysets, with marker values standing in for the real ones; each later call
swaps its values in and runs the SQL through Django's cursor: same database routing, same error
classes, same SQL as the ORM would send, so it follows the models.

Rows come back as the driver returns them, without fields' `from_db_value` converters: use it
for plain columns (numbers, text, timestamps, arrays of those).
"""

from collections.abc import Callable
from functools import cached_property
from typing import Any

from django.db import connections, router
from django.db.models import Model, QuerySet


class PreparedQuery:
    """`build(**markers)` is a values_list() queryset; `rows(**values)` runs it with `values`.

    Each marker must be a value that the query's parameters hold for nothing else (an odd
    negative id, a string with a NUL, a timestamp in the year 1111...); compiling checks that
    every marker is found.
    """

    def __init__(self, build: Callable[..., QuerySet], **markers: Any):
        self._build = build
        self._markers = markers
        self._compiled: dict[str, tuple[str, list[tuple[str | None, Any]]]] = {}

    @cached_property
    def _queryset(self) -> QuerySet:
        return self._build(**self._markers)  # lazily: models may not be loaded at import

    @property
    def model(self) -> type[Model]:
        return self._queryset.model

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._queryset.query.values_select)

    def _compile(self, using: str) -> tuple[str, list[tuple[str | None, Any]]]:
        sql, params = self._queryset.query.get_compiler(using=using).as_sql()
        slots: list[tuple[str | None, Any]] = []
        for value in params:
            name = next(
                (
                    name
                    for name, marker in self._markers.items()
                    if type(value) is type(marker) and value == marker
                ),
                None,
            )
            slots.append((name, value))
        missing = set(self._markers) - {name for name, _ in slots}
        if missing:
            raise ValueError(f"markers {sorted(missing)} are not parameters of: {sql}")
        return sql, slots

    def rows(self, **values: Any) -> list[tuple]:
        return self.fetch(**values)[1]

    def instances(self, **values: Any) -> list[Model]:
        """The rows as model instances, as the ORM makes them (the columns are attnames)."""
        using, rows = self.fetch(**values)
        return [self.model.from_db(using, self.columns, row) for row in rows]

    def fetch(self, **values: Any) -> tuple[str, list[tuple]]:
        """The database read from (as the ORM's router chose it), and the rows."""
        using = router.db_for_read(self.model)
        compiled = self._compiled.get(using)
        if compiled is None:
            compiled = self._compiled[using] = self._compile(using)
        sql, slots = compiled
        params = [values[name] if name else constant for name, constant in slots]
        with connections[using].cursor() as cursor:
            cursor.execute(sql, params)
            return using, cursor.fetchall()
