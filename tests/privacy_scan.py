"""A search for traces of a person in everything Tailor keeps: the files under a home, a
PostgreSQL schema and a Redis database.

Reads every file under the folders it is given: Parquet files row by row (their pages are
compressed, so their bytes alone prove nothing), SQLite and DuckDB files through SQL (every
text cell) and as raw bytes (free pages keep deleted rows), gzip and zip files unpacked,
anything else as bytes. Reads every table of a PostgreSQL schema (each row as text) and
every key and value of a Redis database. Writes nothing. Importable from every test folder.
"""

from __future__ import annotations

import gzip
import io
import sqlite3
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator


@dataclass(frozen=True)
class Trace:
    """Where a needle was found: the place (file, table, key) and which needle."""

    where: str
    needle: str


def _found(blob: bytes, needles: Iterable[str]) -> list[str]:
    lowered = blob.lower()
    return [needle for needle in needles if needle.lower().encode() in lowered]


def _parquet_traces(path: Path, needles: list[str]) -> list[Trace]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    text = "\n".join(str(column.to_pylist()) for column in table.columns)
    text += "\n" + str(table.schema.metadata or "")
    return [Trace(f"{path} (parquet rows)", needle) for needle in _found(text.encode(), needles)]


def _sqlite_traces(path: Path, needles: list[str]) -> list[Trace]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    traces = []
    try:
        tables = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            rows = connection.execute(f'SELECT * FROM "{table}"').fetchall()
            blob = repr(rows).encode()
            traces += [Trace(f"{path} table {table}", needle) for needle in _found(blob, needles)]
    finally:
        connection.close()
    return traces


def _duckdb_traces(path: Path, needles: list[str]) -> list[Trace]:
    import duckdb

    connection = duckdb.connect(str(path), read_only=True)
    traces = []
    try:
        tables = [row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()]
        for table in tables:
            rows = connection.execute(f'SELECT * FROM "{table}"').fetchall()
            blob = repr(rows).encode()
            traces += [Trace(f"{path} table {table}", needle) for needle in _found(blob, needles)]
    finally:
        connection.close()
    return traces


def _archive_members(path: Path, data: bytes) -> Iterator[tuple[str, bytes]]:
    """Unpacked contents of gzip and zip files (numpy's .npz, pickles in zips)."""
    if data[:2] == b"\x1f\x8b":
        try:
            yield f"{path} (gunzipped)", gzip.decompress(data)
        except OSError:
            pass
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for name in archive.namelist():
                    yield f"{path}!{name}", archive.read(name)
        except zipfile.BadZipFile:
            pass


def scan_files(roots: Iterable[Path], needles: list[str], *,
               skip: Iterable[Path] = ()) -> list[Trace]:
    """Every trace of the needles in the files under `roots` (except the `skip` paths)."""
    skipped = {Path(path).resolve() for path in skip}
    traces: list[Trace] = []
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if not path.is_file() or path.is_symlink() or path.resolve() in skipped:
                continue
            data = path.read_bytes()
            traces += [Trace(f"{path} (bytes)", needle) for needle in _found(data, needles)]
            for where, member in _archive_members(path, data):
                traces += [Trace(where, needle) for needle in _found(member, needles)]
            if data[:4] == b"PAR1":
                traces += _parquet_traces(path, needles)
            elif data[:16] == b"SQLite format 3\x00":
                traces += _sqlite_traces(path, needles)
            elif path.suffix == ".duckdb":
                traces += _duckdb_traces(path, needles)
    return traces


def scan_postgres(url: str, needles: list[str]) -> list[Trace]:
    """Traces in every table of the schema the URL's search_path selects."""
    import psycopg

    traces = []
    with psycopg.connect(url) as connection:
        tables = [row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")]
        for table in tables:
            for needle in needles:
                hits = connection.execute(
                    f'SELECT count(*) FROM "{table}" AS t WHERE lower(t::text) LIKE %s',
                    (f"%{needle.lower()}%",)).fetchone()[0]
                if hits:
                    traces.append(Trace(f"postgresql table {table} ({hits} rows)", needle))
    return traces


def scan_redis(url: str, needles: list[str]) -> list[Trace]:
    """Traces in every key and value of the Redis database the URL names."""
    import redis

    client = redis.Redis.from_url(url)
    traces = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values: list[bytes] = [client.get(key) or b""]
        elif kind == "hash":
            values = [part for pair in client.hgetall(key).items() for part in pair]
        elif kind in ("list",):
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        else:
            values = []
        for needle in _found(key + b"\n" + b"\n".join(values), needles):
            traces.append(Trace(f"redis key {key!r}", needle))
    return traces
