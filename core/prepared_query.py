"""Hot-path queries: the ORM's own SQL, compiled once per process, run with each call's values.

Turning a queryset into SQL costs more CPU than PostgreSQL spends answering it, more even than
the whole round trip (measured: docs/performance.md).
The few queries that every request makes (the token check, a note, a page of notes) are built
once as ordinary querysets, with marker values standing in for the real ones; each later call
swaps its values in and runs the SQL through Django's cursor: same database routing, same error
classes, same SQL as the ORM would send, so it follows the models.

Rows come back as the driver returns them, without the ORM's converters, so only plain columns
(numbers, text, timestamps, arrays of those) may be selected: compiling refuses a column that
has a converter (a JSONField, a custom field with `from_db_value`), rather than return it raw.
"""

from collections.abc import Callable
from functools import cached_property
from typing import Any

from django.db import connections, router
from django.db.models import Model, QuerySet


class PreparedQuery[M: Model]:
    """`build(**markers)` is a values_list() queryset; `rows(**values)` runs it with `values`.

    Each marker must be a value that the query's parameters hold for nothing else (an odd
    negative id, a string with a NUL, a timestamp in the year 1111...); compiling checks that
    every marker is found.
    """

    def __init__(self, build: Callable[..., QuerySet[M, Any]], **markers: Any):
        self._build = build
        self._markers = markers
        self._compiled: dict[str, tuple[str, list[tuple[str | None, Any]]]] = {}

    @cached_property
    def _queryset(self) -> QuerySet[M, Any]:
        return self._build(**self._markers)  # lazily: models may not be loaded at import

    @property
    def model(self) -> type[M]:
        return self._queryset.model

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._queryset.query.values_select)

    def _compile(self, using: str) -> tuple[str, list[tuple[str | None, Any]]]:
        compiler = self._queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        converted = compiler.get_converters([column for column, _, _ in compiler.select])
        if converted:
            names = [_column_name(*compiler.select[position]) for position in sorted(converted)]
            raise ValueError(f"columns {names} need the ORM's converters: select them with the ORM")
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

    def instances(self, **values: Any) -> list[M]:
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


def _column_name(expression, compiled, alias: str | None) -> str:
    target = getattr(expression, "target", None)
    return alias or (target.attname if target is not None else str(expression))
