"""Hostile files through `ingest_files` (what `tailor ingest` runs): arbitrary bytes under
each format's name, CSV and JSON Lines whose cells hold hostile text (SQL, NUL, lone
surrogates, huge numbers, deeply nested JSON in `properties`). The import never crashes:
it returns a report or refuses the file with an `InputError` naming the problem, and a
refused file stores nothing. Every row it reports as accepted is in the store.

Each example imports into a fresh SQLite home; examples are few and small (fast)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from tailor.config import load_settings
from tailor.errors import InputError
from tailor.events.ingest.job import ingest_files
from tailor.events.store import open_event_store

EXAMPLES = hypothesis_settings(max_examples=50, deadline=None, database=None,
                               suppress_health_check=[HealthCheck.too_slow])
NOW = pd.Timestamp("2026-03-01T00:00:00Z")
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["'; DROP TABLE events; --", "\x00", "\ud800", "=cmd|' /C calc'!A0",
                     "1e999", "-0", "9" * 40, "\r\n,\"", "<script>alert(1)</script>",
                     "{\"a\":" * 500 + "1" + "}" * 500, "[" * 5000 + "]" * 5000, "NaN",
                     "../../etc/passwd", "a" * 5000]))


def _import(files: dict[str, bytes]) -> tuple[object, int, int]:
    """Import `files` (name -> bytes; `events.*` first) into a fresh home.

    Returns:
        (the report or the InputError, events stored, dead letters stored).
    """
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        paths = {}
        for name, data in files.items():
            (root / name).write_bytes(data)
            paths[name.split(".")[0]] = root / name
        settings = load_settings(home=root / "home", env={}).replace(ingest_chunk_rows=7)
        try:
            outcome: object = ingest_files(settings, paths["events"],
                                           products_path=paths.get("products"),
                                           progress=False, now=NOW)
        except InputError as error:  # a refused file: a clear message, nothing stored
            assert str(error).strip(), "an import error must say what is wrong"
            outcome = error
        if not (root / "home" / "events.db").exists():
            return outcome, 0, 0
        store = open_event_store(settings.event_store_url)
        try:
            return outcome, store.count_events(), sum(store.rejected_counts().values())
        finally:
            store.close()


@given(data=st.binary(max_size=400), name=st.sampled_from(
    ["events.csv", "events.jsonl", "events.parquet", "events.csv.gz", "events.json"]))
@EXAMPLES
def test_arbitrary_bytes_never_crash_the_import(data: bytes, name: str) -> None:
    if name.endswith(".gz"):
        data = gzip.compress(data) if len(data) % 2 else data  # valid gzip or not
    outcome, events, _ = _import({name: data})
    if isinstance(outcome, InputError):
        assert events == 0
    else:
        assert events == outcome.accepted


def _csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8", "surrogatepass")


def _jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(row) for row in rows).encode("utf-8", "surrogatepass")


@st.composite
def hostile_rows(draw: st.DrawFn) -> list[dict]:
    rows = []
    for number in range(draw(st.integers(1, 6))):
        rows.append({
            "event_id": draw(st.one_of(st.just(f"e{number}"), HOSTILE_TEXT)),
            "customer_id": draw(st.one_of(st.just("c1"), HOSTILE_TEXT)),
            "event_type": draw(st.one_of(st.just("search"), HOSTILE_TEXT)),
            "product_id": draw(st.one_of(st.just("p1"), HOSTILE_TEXT)),
            "timestamp": draw(st.one_of(st.just("2026-02-01T10:00:00Z"), HOSTILE_TEXT,
                                        st.integers(-10**20, 10**20).map(str))),
            "price": draw(st.one_of(st.just("9.5"), HOSTILE_TEXT)),
            "quantity": draw(st.one_of(st.just("1"), HOSTILE_TEXT)),
            "query": draw(HOSTILE_TEXT),
            "properties": draw(st.one_of(st.just("{}"), HOSTILE_TEXT)),
        })
    return rows


@given(rows=hostile_rows(), as_csv=st.booleans())
@EXAMPLES
def test_hostile_cells_are_stored_or_dead_lettered_never_a_crash(rows: list[dict],
                                                                  as_csv: bool) -> None:
    name, data = ("events.csv", _csv(rows)) if as_csv else ("events.jsonl", _jsonl(rows))
    outcome, events, dead = _import({name: data})
    if isinstance(outcome, InputError):
        assert events == 0 and dead == 0
        return
    assert events == outcome.accepted
    assert outcome.accepted + outcome.duplicates + sum(outcome.rejected.values()) == len(rows)
