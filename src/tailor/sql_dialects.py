"""One SQL text for DuckDB and Spark: the few constructs the two dialects spell differently.

Reads and writes nothing. Tailor's batch SQL files (`features/sql/*.sql`,
`warehouse/sql/orders.sql`) are written in the part of SQL both engines read alike, and
name each construct they spell differently through the `sql` placeholder, rendered by
`render(text, dialect, **values)` (Python's `str.format`):

    {sql.epoch_seconds:e.timestamp}         seconds since 1970 as DOUBLE (with the fraction)
    {sql.epoch_micros:event_time}           microseconds since 1970 as BIGINT
    {sql.timestamp_from_seconds:b * 3600}   a UTC timestamp from whole seconds
    {sql.last_non_null:device_type}         LAST_VALUE ignoring NULLs (a window aggregate)
    {sql.first_non_null:device_type}        FIRST_VALUE ignoring NULLs
    {sql.sorted_list:category}              the group's values as a sorted list (aggregate)
    {sql.list_length:viewed}                a list's length (NULL for NULL)
    {sql.empty_string_list}                 an empty list of strings

Everything else is written once: no `1.0 *` to force floating division (a DECIMAL in
Spark: `CAST(x AS DOUBLE)` instead), no QUALIFY, no `* EXCLUDE`, no list literals, no
double-quoted identifiers, and every window that LEAD or LAG reads has no frame.
`tests/unit/batch/test_sql_dialects.py` renders every file for both engines and runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Macro:
    """A one-argument construct: its argument is the placeholder's format spec."""

    template: str  # `{0}` is the argument

    def __format__(self, argument: str) -> str:
        if not argument.strip():
            raise ValueError(f"SQL macro {self.template!r} needs an argument "
                             "(write {sql.name:argument})")
        return self.template.format(argument.strip())


@dataclass(frozen=True)
class Dialect:
    """How one engine spells the constructs of the module docstring."""

    name: str
    epoch_seconds: Macro
    epoch_micros: Macro
    timestamp_from_seconds: Macro
    last_non_null: Macro
    first_non_null: Macro
    sorted_list: Macro
    list_length: Macro
    empty_string_list: str
    json_path_template: str  # {column}, {path}: a JSON string's value at a path, as text
    quote_escapes: tuple[tuple[str, str], ...]  # replacements inside a string literal

    def literal(self, text: str) -> str:
        """A string literal of `text` (for names from settings or the catalogue, never for
        values a request carries)."""
        for character, escaped in self.quote_escapes:
            text = text.replace(character, escaped)
        return f"'{text}'"

    def json_text(self, column: str, path: str) -> str:
        """SQL reading the text at `path` (e.g. `$.season`) of a JSON string column."""
        return self.json_path_template.format(column=column, path=self.literal(path))


DUCKDB = Dialect(
    name="duckdb",
    epoch_seconds=Macro("EPOCH({0})"),
    epoch_micros=Macro("EPOCH_US({0})"),
    timestamp_from_seconds=Macro("TO_TIMESTAMP({0})"),
    last_non_null=Macro("LAST_VALUE({0} IGNORE NULLS)"),
    first_non_null=Macro("FIRST_VALUE({0} IGNORE NULLS)"),
    sorted_list=Macro("LIST_SORT(LIST({0}))"),
    list_length=Macro("LEN({0})"),
    empty_string_list="CAST([] AS VARCHAR[])",
    json_path_template="json_extract_string({column}, {path})",
    quote_escapes=(("'", "''"),),
)

SPARK = Dialect(
    name="spark",
    # UNIX_MICROS / 1e6 is the double DuckDB's EPOCH gives (1e6 is a DOUBLE literal in both).
    epoch_seconds=Macro("(UNIX_MICROS({0}) / 1e6)"),
    epoch_micros=Macro("UNIX_MICROS({0})"),
    timestamp_from_seconds=Macro("TIMESTAMP_SECONDS({0})"),
    last_non_null=Macro("LAST_VALUE({0}, true)"),
    first_non_null=Macro("FIRST_VALUE({0}, true)"),
    sorted_list=Macro("ARRAY_SORT(COLLECT_LIST({0}))"),
    list_length=Macro("ARRAY_SIZE({0})"),  # SIZE(NULL) is -1 outside ANSI mode
    empty_string_list="CAST(ARRAY() AS ARRAY<STRING>)",
    json_path_template="GET_JSON_OBJECT({column}, {path})",
    # Spark reads '' inside a literal as two adjacent literals: escape with backslashes.
    quote_escapes=(("\\", "\\\\"), ("'", "\\'")),
)

DIALECTS: dict[str, Dialect] = {dialect.name: dialect for dialect in (DUCKDB, SPARK)}


def render(text: str, dialect: Dialect, **values: Any) -> str:
    """A SQL file's text for one engine: `{sql.…}` constructs in its dialect, the other
    placeholders from `values`."""
    return text.format(sql=dialect, **values)
