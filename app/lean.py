"""Prebuilt Core statements run straight on the DBAPI cursor, for the paths every message takes.

`Connection.execute` of an already-compiled statement costs 40-130 µs here on top of the
database's own work (a cache lookup, an execution context, the result's metadata, the event
dispatch), against 3-5 µs for the statement in the driver: a chat message runs 6-10
statements, so that overhead was a quarter to a third of the time a message took
(benchmarks/parse_bench.py). `run` does what SQLAlchemy does for such a statement, once per
statement and dialect (compile, bind processors, result processors), and each time only
binds the values, executes on the connection's own cursor (so in its transaction) and
converts the columns:

- the same SQL text and values SQLAlchemy sends, on SQLite and PostgreSQL alike;
- `before_cursor_execute` / `after_cursor_execute` listeners still see every statement
  (the inbox's read-only guard, tests counting statements);
- a driver error comes out as SQLAlchemy's exception, through the connection's own handler
  (so a lost PostgreSQL connection is invalidated as usual).

Anything this plan does not cover runs through `conn.execute` unchanged: statements with
expanding IN lists, Python-side column defaults, schema translation, executemany on a
driver that cannot count its rows. Only for module-level (prebuilt) statements: plans are
cached per statement object and engine (at most 1024, then the cache starts again).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, exc
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import BindParameter

_MAX_PLANS = 1024


@dataclass(slots=True)
class _Plan:
    compiled: SQLCompiler
    sql: str
    # Per value the driver takes, in its order (qmark) or once per name (named style): the
    # name, the key a caller passes it under, the bind parameter (for its default value)
    # and the type's converter.
    slots: tuple[tuple[str, str, BindParameter[Any], Callable[[Any], Any] | None], ...]
    positional: bool
    keys: tuple[str, ...]
    row: type[tuple[Any, ...]] | None
    # Makes a result row from the driver's, converting columns by their types; made at the
    # first run, from the cursor's description, as SQLAlchemy picks its converters.
    build: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = field(default=None)


_PLANS: dict[tuple[Any, ...], _Plan | None] = {}


class Rows:
    """What `run` returns: the rows read (tuples whose fields are named after the columns),
    or for a statement that reads none, `rowcount`, the rows it changed. The subset of
    SQLAlchemy's Result the hot paths use."""

    __slots__ = ("_keys", "_rows", "rowcount")

    def __init__(self, rows: list[Any], keys: tuple[str, ...], rowcount: int) -> None:
        self._rows = rows
        self._keys = keys
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any | None:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if not self._rows:
            raise exc.NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]

    def mappings(self) -> Rows:
        """The same rows as dicts keyed by column name."""
        keys = self._keys
        return Rows([dict(zip(keys, row, strict=True)) for row in self._rows], keys, self.rowcount)


def _plan(conn: Connection, statement: ClauseElement, keys: tuple[str, ...] | None) -> _Plan | None:
    compiled = statement.compile(dialect=conn.dialect, column_keys=list(keys) if keys else None)
    assert isinstance(compiled, SQLCompiler)
    if (
        compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.schema_translate_map
        or compiled.escaped_bind_names
    ):
        return None
    if compiled._collected_params:  # values given with .params(): SQLAlchemy's path
        return None
    processors = compiled._bind_processors
    if not all(callable(p) for p in processors.values()):
        return None  # a tuple-valued bind: processors per element
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    names = (compiled.positiontup or ()) if compiled.positional else tuple(by_name)
    columns = tuple(c[0] for c in compiled._result_columns)
    return _Plan(
        compiled=compiled,
        sql=compiled.string,
        slots=tuple(
            (name, by_name[name].key, by_name[name], processors.get(name))  # type: ignore[misc]
            for name in names
        ),
        positional=compiled.positional,
        keys=columns,
        row=namedtuple("Row", columns, rename=True) if columns else None,
    )


def _plan_for(
    conn: Connection, statement: ClauseElement, params: Mapping[str, Any]
) -> _Plan | None:
    # DML compiles per set of columns given (which columns an INSERT names, for one). Per
    # dialect object, i.e. per engine: it knows the server's version and the driver.
    keys = tuple(params) if isinstance(statement, UpdateBase) else None
    key = (statement, conn.dialect, keys)
    try:
        return _PLANS[key]
    except KeyError:
        pass
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    plan = _PLANS[key] = _plan(conn, statement, keys)
    return plan


def _values(plan: _Plan, params: Mapping[str, Any]) -> Any:
    """The values for the driver, as SQLCompiler.construct_params and the execution context
    make them: the caller's value by key (or name), else the bind's own; then converted."""
    values = []
    for name, key, bind, convert in plan.slots:
        if key in params:
            value = params[key]
        elif name in params:
            value = params[name]
        elif bind.required:
            raise exc.InvalidRequestError(f"A value is required for bind parameter {key!r}")
        else:
            value = bind.effective_value if bind.callable else bind.value
        values.append(value if convert is None else convert(value))
    if plan.positional:
        return tuple(values)
    return {slot[0]: value for slot, value in zip(plan.slots, values, strict=True)}


def _builder(
    conn: Connection, plan: _Plan, description: Any
) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A function making one result row from the driver's: each column through its type's
    converter (NULL stays None), the whole as the plan's named tuple. Its source is built
    from column positions alone (as namedtuple builds its class): per row it costs one call,
    where a loop over the columns cost several per row on histories of hundreds of rows."""
    dialect = conn.dialect
    types = [c[3] for c in plan.compiled._result_columns]
    namespace: dict[str, Any] = {"new": tuple.__new__, "Row": plan.row}
    parts = []
    for i, (type_, column) in enumerate(zip(types, description, strict=True)):
        convert = type_._cached_result_processor(dialect, column[1])
        if convert is None:
            parts.append(f"r[{i}]")
        else:
            namespace[f"c{i}"] = convert
            parts.append(f"(None if r[{i}] is None else c{i}(r[{i}]))")
    exec(f"def build(r):\n    return new(Row, ({', '.join(parts)},))", namespace)
    build: Callable[[tuple[Any, ...]], tuple[Any, ...]] = namespace["build"]
    return build


def _rows(conn: Connection, plan: _Plan, cursor: Any) -> Rows:
    if plan.row is None:
        return Rows([], (), cursor.rowcount)
    fetched = cursor.fetchall()
    build = plan.build
    if build is None:
        build = plan.build = _builder(conn, plan, cursor.description)
    return Rows([build(raw) for raw in fetched], plan.keys, cursor.rowcount)


def run(
    conn: Connection,
    statement: ClauseElement,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> Any:
    """Execute prebuilt `statement` with `params` (one mapping, or a list of them for an
    executemany of a statement that reads nothing) on `conn`, in its transaction. Returns
    `Rows`, or for a statement outside the lean plan SQLAlchemy's own Result, which offers
    the same methods."""
    batch: Sequence[Mapping[str, Any]] | None = None
    first: Mapping[str, Any] = {}
    if isinstance(params, Mapping):
        first = params
    elif params is not None:
        batch = params
        first = batch[0] if batch else {}
    plan = _plan_for(conn, statement, first)
    if plan is None or (
        batch is not None
        and (plan.row is not None or not conn.dialect.supports_sane_multi_rowcount)
    ):
        return conn.execute(statement, params)  # type: ignore[call-overload]
    if not conn.in_transaction():
        conn.begin()  # as SQLAlchemy's autobegin would
    try:
        args = [_values(plan, p) for p in batch] if batch is not None else _values(plan, first)
    except Exception as error:  # a value missing or refused by its type: as SQLAlchemy says it
        raise exc.StatementError(str(error), plan.sql, params, error) from error
    many = batch is not None
    sql = plan.sql
    dispatch = conn.dispatch
    cursor = conn.connection.cursor()
    try:
        if dispatch.before_cursor_execute:  # (iterating an empty one costs more than asking)
            for before in dispatch.before_cursor_execute:
                sql, args = before(conn, cursor, sql, args, None, many)
        if many:
            cursor.executemany(sql, args)
        else:
            cursor.execute(sql, args)
        if dispatch.after_cursor_execute:
            for after in dispatch.after_cursor_execute:
                after(conn, cursor, sql, args, None, many)
        return _rows(conn, plan, cursor)
    except conn.dialect.loaded_dbapi.Error as error:
        conn._handle_dbapi_exception(error, sql, args, cursor, None)
    finally:
        cursor.close()
