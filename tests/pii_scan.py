"""Looking for personal data (e-mail addresses, names) in every file under a folder: the PII
scan of `tests/e2e/test_pii_scan.py`, usable by any test that must prove a value is gone.

Reads the files it is given, opened the way their format needs so that nothing hides in an
encoding: Parquet files column by column (they are compressed), SQLite and DuckDB databases
table by table (and as bytes), zip archives (`.npz`, wheels) and gzip or zlib streams
unpacked, and every file's raw bytes, each searched for the values in UTF-8, UTF-16 and
UTF-32 (NumPy keeps text arrays as UTF-32), all values at once (an Aho-Corasick automaton:
one pass over the bytes finds every occurrence of every value). Writes nothing.
"""

from __future__ import annotations

import gzip
import io
import sqlite3
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

SQLITE_MAGIC = b"SQLite format 3\x00"
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"
MAX_DEPTH = 3  # archives inside archives


@dataclass(frozen=True)
class Finding:
    """A value found: the file (and the part of it: a table, an archive member) and which."""

    where: str
    value: str


def _patterns(values: Iterable[str]) -> Any:
    """An automaton matching each value's bytes in each encoding; a match carries the value.
    The bytes are mapped one to one onto characters (Latin-1), which the automaton takes."""
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for value in values:
        for encoding in ("utf-8", "utf-16-le", "utf-32-le"):
            automaton.add_word(value.encode(encoding).decode("latin-1"), value)
    automaton.make_automaton()
    return automaton


def scan_folder(folder: Path, values: Iterable[str], skip: Iterable[Path] = ()) -> list[Finding]:
    """Every place under `folder` (but the `skip` paths) where one of `values` occurs."""
    patterns = _patterns(values)
    skipped = [path.resolve() for path in skip]
    findings: list[Finding] = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if any(path.resolve().is_relative_to(other) for other in skipped):
            continue
        findings += scan_bytes(str(path.relative_to(folder)), path.read_bytes(), patterns, path)
    return findings


def scan_bytes(where: str, data: bytes, patterns: Any, path: Path | None = None,
               depth: int = 0) -> list[Finding]:
    """The values (`_patterns`) in one file's bytes and in whatever its format unpacks to."""
    import ahocorasick

    findings = [] if patterns.kind == ahocorasick.EMPTY else \
        [Finding(where, value) for _, value in patterns.iter(data.decode("latin-1"))]
    for part, unpacked in _unpacked(data, path, depth):
        findings += scan_bytes(f"{where}:{part}", unpacked, patterns, None, depth + 1)
    return sorted(set(findings), key=lambda finding: (finding.where, finding.value))


def _unpacked(data: bytes, path: Path | None, depth: int) -> Iterator[tuple[str, bytes]]:
    """The readable forms a file holds beyond its raw bytes."""
    if depth >= MAX_DEPTH:
        return
    if data.startswith(PARQUET_MAGIC) and data.endswith(PARQUET_MAGIC):
        yield "parquet", _parquet_text(data)
    elif data.startswith(SQLITE_MAGIC) and path is not None:
        yield from _sqlite_tables(path)
    elif data.startswith(ZIP_MAGIC):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                yield name, archive.read(name)
    elif data.startswith(GZIP_MAGIC):
        yield "gzip", gzip.decompress(data)
    elif path is not None and path.suffix == ".duckdb":
        yield from _duckdb_tables(path)
    elif data[:1] == b"\x78":  # a zlib stream (joblib's compressed pickles)
        try:
            yield "zlib", zlib.decompress(data)
        except zlib.error:
            pass


def _parquet_text(data: bytes) -> bytes:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    parts = [str(table.schema.metadata or {})]
    for column in table.columns:
        parts += [str(value) for value in column.to_pylist()]
    return "\n".join(parts).encode("utf-8")


def _sqlite_tables(path: Path) -> Iterator[tuple[str, bytes]]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for name in names:
            rows = connection.execute(f'SELECT * FROM "{name}"').fetchall()
            yield f"table {name}", "\n".join(map(repr, rows)).encode("utf-8", "replace")
    except sqlite3.DatabaseError:
        return
    finally:
        connection.close()


def _duckdb_tables(path: Path) -> Iterator[tuple[str, bytes]]:
    import duckdb

    connection = duckdb.connect(str(path), read_only=True)
    try:
        names = [row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()]
        for name in names:
            rows = connection.execute(f'SELECT * FROM "{name}"').fetchall()
            yield f"table {name}", "\n".join(map(repr, rows)).encode("utf-8", "replace")
    finally:
        connection.close()
