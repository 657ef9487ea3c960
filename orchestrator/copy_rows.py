"""Inserting many model rows at once with PostgreSQL's COPY.

`bulk_create` compiles every value of every row through the field's
preparation methods and, with client-side binding, quotes each into the SQL
text: for the scheduler's batches (thousands of runs, tick rows and audit
rows at one instant) that Python work was most of a tick's cost. COPY sends
the rows as they are, each value dumped once by psycopg. Elsewhere (SQLite)
it is `bulk_create`.

The rows are the instances' own values, every concrete column but an
auto-incremented id, so a column added to a model later needs nothing here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from django.db import connection, models
from django.utils import timezone
from psycopg.types.json import Jsonb


def _columns(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    return [field for field in model._meta.concrete_fields if not isinstance(field, models.AutoField)]


def _json(value: Any) -> Any:
    return None if value is None else Jsonb(value)


def _text(value: Any) -> Any:
    # A TextChoices member: psycopg would dump the member's name, not its value.
    return value.value if isinstance(value, enum.Enum) else value


def _converter(field: models.Field[Any, Any]) -> Callable[[Any], Any] | None:
    if isinstance(field, models.JSONField):
        return _json
    if isinstance(field, models.CharField | models.TextField):
        return _text
    return None


def insert_rows(objs: Sequence[models.Model]) -> None:
    """INSERT the (unsaved) instances, all of one model, in one COPY.

    Fields with `auto_now`/`auto_now_add` left empty are set to now, as
    `save` would; primary keys the database makes are not read back."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objs)
        return
    fields = _columns(model)
    now = timezone.now()
    stamped = [
        field
        for field in fields
        if isinstance(field, models.DateField) and (field.auto_now or field.auto_now_add)
    ]
    for obj in objs:
        for field in stamped:
            if field.auto_now or getattr(obj, field.attname) is None:
                setattr(obj, field.attname, now)
    names = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    values = attrgetter(*(field.attname for field in fields))
    converted = [(index, convert) for index, field in enumerate(fields) if (convert := _converter(field))]
    # wrap_database_errors: a unique violation is Django's IntegrityError, as from bulk_create.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for obj in objs:
                row = list(values(obj))
                for index, convert in converted:
                    row[index] = convert(row[index])
                copy.write_row(row)
