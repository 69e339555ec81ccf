"""File import (`tailor ingest`): products, customers and events from CSV or Parquet.

Reads an events file (`.csv`, `.csv.gz`, `.parquet`, `.pq`) and optionally a products
and a customers file; writes the catalogue and pseudonymous customers to the event
store, customers' PII columns to the PII store only, valid events to `events` and
every rejected row (with its reason and raw text) to `rejected_events`, and one
`ingest_runs` row. Events stream through in chunks of `ingest_chunk_rows`, so memory
stays bounded whatever the file size; re-importing a file stores nothing twice. When the
file holds more than one chunk, a reader process reads and validates the next chunk while
this process writes the current one (one transaction per chunk, as before): an import
killed midway leaves whole chunks, and importing again completes it.

Whole-file problems (missing file, unknown format, empty file, invalid UTF-8, a
missing required column) raise before anything is written. Row problems never do:
malformed lines and contract violations go to the dead-letter table and the rows
around them are imported. Zone-less timestamps are read in `events.naive_timezone`; the
report counts them and names the zone (`timestamps` in `ingest --json`).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import logging
import multiprocessing
import pickle
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Iterator, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tailor.events.pii import open_pii_store, pii_columns
from tailor.events.schema import (
    CUSTOMER_COLUMNS,
    EVENT_COLUMNS,
    MALFORMED_ROW,
    NUL,
    PRODUCT_COLUMNS,
    ContractError,
    TimestampRules,
    check_event_columns,
    rows_as_json,
    validate_events,
)
from tailor.events.retry import (
    RetryPolicy, insert_events_exactly, insert_rejected_once, one_line, with_retries,
)
from tailor.events.store import (
    RUN_ABORTED, RUN_FINISHED, EventStore, IngestRun, StoreUnavailable, open_event_store,
)
from tailor.events.value_limits import is_storable_text
from tailor.urls import redact_url

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
ACCEPTED_FORMATS = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
CSV_BLOCK_BYTES = 4 << 20
UTF8_SCAN_BYTES = 16 << 20
# Contract columns whose values never span lines (query and properties may).
ONE_LINE_COLUMNS = ("event_id", "customer_id", "event_type", "product_id", "timestamp",
                    "session_id", "price", "quantity", "order_id", "device_type")
# Lower-cased header names that map onto a contract column (e.g. "Customer_ID").
_KNOWN_COLUMNS = set(EVENT_COLUMNS) | set(PRODUCT_COLUMNS) | set(CUSTOMER_COLUMNS)


@dataclass
class IngestReport:
    """What one `ingest_files` call did; `to_dict` is the `ingest --json` payload."""

    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    received: int = 0
    products: int = 0
    customers: int = 0
    batch_id: str = ""
    store: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    pii_in_events: bool = False  # the events file has PII columns (dropped on read)
    naive_timestamps: int = 0  # zone-less timestamps read, each taken in naive_timezone
    naive_timezone: str = "UTC"

    def to_dict(self) -> dict[str, Any]:
        """`{"accepted", "duplicates", "rejected": {reason: n}}` followed by the extra keys."""
        payload: dict[str, Any] = {
            "accepted": self.accepted, "duplicates": self.duplicates,
            "rejected": dict(sorted(self.rejected.items())),
            "received": self.received, "products": self.products, "customers": self.customers,
            "batch_id": self.batch_id, "store": self.store, "seconds": round(self.seconds, 3),
            "timestamps": {"zone_less": self.naive_timestamps,
                           "assumed_zone": self.naive_timezone},
        }
        if self.warnings:
            payload["warnings"] = list(self.warnings)
        return payload

    def summary_text(self, store_url: str) -> str:
        """A few lines for people: counts, the zone-less timestamps and the store."""
        rejected = ", ".join(f"{reason} {count:,}"
                             for reason, count in sorted(self.rejected.items())) or "none"
        return (f"accepted {self.accepted:,}; duplicates {self.duplicates:,}; "
                f"rejected: {rejected}\n"
                f"zone-less timestamps: {self.naive_timestamps:,} (read as "
                f"{self.naive_timezone}, events.naive_timezone)\n"
                f"store: {store_url}")

    def count_rejected(self, reasons: pd.Series) -> None:
        """Add a chunk's rejection reasons to the per-reason counts."""
        for reason, count in reasons.value_counts().items():
            self.rejected[str(reason)] = self.rejected.get(str(reason), 0) + int(count)


@dataclass
class MalformedLine:
    """A CSV record the parser could not split into the header's columns."""

    row_number: int  # 1-based data row (the header is not counted)
    text: str
    fields_found: int
    fields_expected: int


@dataclass
class Chunk:
    """Rows of one chunk plus where they sit in the file and the malformed lines seen so far."""

    frame: pd.DataFrame
    row_numbers: np.ndarray  # 1-based data row of each frame row
    malformed: list[MalformedLine]
    line_break_in: np.ndarray | None = None  # per row: a one-line field holding a line break

    def split(self, shares: tuple[float, ...]) -> list["Chunk"]:
        """The chunk cut into consecutive pieces of these shares of its rows (the malformed
        lines go with the first piece)."""
        ends = [round(len(self.frame) * share) for share in np.cumsum(shares)]
        pieces, start = [], 0
        for end in [*ends[:-1], len(self.frame)]:
            breaks = None if self.line_break_in is None else self.line_break_in[start:end]
            pieces.append(Chunk(self.frame.iloc[start:end].reset_index(drop=True),
                                self.row_numbers[start:end],
                                self.malformed if not pieces else [], breaks))
            start = end
        return pieces


# -- file checks ------------------------------------------------------------------------------


def file_format(path: Path) -> str:
    """'csv' or 'parquet' from the file name.

    Raises:
        ValueError: any other extension (the message lists the accepted ones).
    """
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise ValueError(f"{path}: unsupported file format; accepted formats: {ACCEPTED_FORMATS}")


@dataclass
class InputFile:
    """A file that passed the whole-file checks."""

    path: Path
    kind: str  # 'csv' or 'parquet'
    rows_estimate: int  # data rows (CSV: lines after the header, exact without quoted newlines)


def check_input_file(path: Path, label: str) -> InputFile:
    """Check a file can be imported, before anything is written.

    Raises:
        FileNotFoundError, IsADirectoryError: the path is not a file.
        ValueError: unknown format, empty file, or (CSV) not valid UTF-8.
    """
    if path.is_dir():
        raise IsADirectoryError(f"{label} file {path} is a directory; "
                                "expected a CSV or Parquet file")
    if not path.exists():
        raise FileNotFoundError(f"{label} file not found: {path}")
    kind = file_format(path)
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes); nothing to import")
    if kind == "parquet":
        return InputFile(path, kind, _parquet_rows(path))
    lines, problem = scan_utf8_lines(path)
    if problem:
        raise ValueError(f"{path}: {problem}; the file was rejected as a whole and nothing "
                         "from it was imported (re-encode it as UTF-8, e.g. "
                         "`iconv -f latin1 -t utf-8`, and import again)")
    return InputFile(path, kind, max(lines - 1, 0))


def _parquet_rows(path: Path) -> int:
    """Rows in a Parquet file's footer; ValueError when it is not Parquet."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{path}: not a readable Parquet file ({error})") from None


def _open_bytes(path: Path) -> BinaryIO:
    """The file's (decompressed) bytes."""
    if path.name.lower().endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    return open(path, "rb")


def scan_utf8_lines(path: Path) -> tuple[int, str | None]:
    """Lines of a (gzipped) text file, and its first invalid UTF-8 byte described (or None).

    Lines count a last line without a final newline too.
    """
    offset, lines, carry, last = 0, 0, b"", b"\n"
    decoder_error = codecs.lookup("utf-8").decode
    with _open_bytes(path) as stream:
        while True:
            block = stream.read(UTF8_SCAN_BYTES)
            data = carry + block
            if not data:
                return lines + (last != b"\n"), None
            try:
                decoder_error(data)
                consumed, carry = len(data), b""
            except UnicodeDecodeError as error:
                # A character split across two blocks is fine: finish it with the next block.
                if block and error.reason == "unexpected end of data":
                    consumed, carry = error.start, data[error.start:]
                else:
                    line = lines + data.count(b"\n", 0, error.start) + 1
                    bad = data[error.start:error.start + 1].hex()
                    return line, (f"not valid UTF-8: byte 0x{bad} at byte offset "
                                  f"{offset + error.start} (line {line}): {error.reason}")
            lines += data.count(b"\n", 0, consumed)
            offset += consumed
            last = data[consumed - 1:consumed] or last


def csv_header(path: Path) -> list[str]:
    """The header's column names, normalised (see `normalise_columns`).

    Raises:
        ValueError: the file has no header line.
    """
    with _open_bytes(path) as stream:
        text = io.TextIOWrapper(cast(BinaryIO, stream), encoding="utf-8-sig", newline="")
        header = next(csv.reader(text), None)
    if not header or all(not name.strip() for name in header):
        raise ValueError(f"{path}: empty file (no header line); nothing to import")
    return normalise_columns(header, path)


def normalise_columns(names: list[str], path: Path) -> list[str]:
    """Names stripped; contract names matched case-insensitively ("Customer_ID" → customer_id).

    Raises:
        ContractError: two columns end up with the same name.
    """
    normalised = []
    for position, name in enumerate(names):
        clean = str(name).strip()
        if clean.lower() in _KNOWN_COLUMNS:
            clean = clean.lower()
        normalised.append(clean or f"column_{position + 1}")
    repeated = sorted({name for name in normalised if normalised.count(name) > 1})
    if repeated:
        raise ContractError(f"{path}: duplicate column(s) {', '.join(repeated)} in the header")
    return normalised


def file_columns(path: Path, kind: str) -> list[str]:
    """Column names of a CSV header or a Parquet schema (normalised)."""
    if kind == "csv":
        return csv_header(path)
    try:
        names = pq.ParquetFile(path).schema_arrow.names
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{path}: not a readable Parquet file ({error})") from None
    return normalise_columns(names, path)


def require_columns(path: Path, columns: list[str], required: tuple[str, ...]) -> None:
    """Raise ContractError naming the file and each required column it lacks."""
    missing = [name for name in required if name not in columns]
    if missing:
        raise ContractError(f"{path}: missing required column(s): {', '.join(missing)} "
                            f"(found: {', '.join(columns) or 'none'})")


# -- chunked reading ---------------------------------------------------------------------------


def iter_chunks(path: Path, kind: str, columns: list[str], chunk_rows: int, *,
                arrow_text: bool = False) -> Iterator[Chunk]:
    """Stream a file as chunks of at most `chunk_rows` rows (CSV values as text).

    Args:
        path: the file; kind: 'csv' or 'parquet'; columns: its normalised column names.
        chunk_rows: rows per chunk.
        arrow_text: text stays Arrow-backed (`pd.ArrowDtype`) instead of Python objects;
            `validate_events` reads those without a conversion.

    Raises:
        ValueError: the file cannot be parsed past some point (rows before it were yielded).
    """
    if kind == "csv":
        yield from _csv_chunks(path, columns, chunk_rows, arrow_text)
    else:
        yield from _parquet_chunks(path, columns, chunk_rows, arrow_text)


def _text_as_arrow(arrow_type: pa.DataType) -> pd.ArrowDtype | None:
    """`pd.ArrowDtype` for text columns, None (pandas' own dtype) for the others."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.ArrowDtype(arrow_type)
    return None


def _parquet_chunks(path: Path, columns: list[str], chunk_rows: int,
                    arrow_text: bool) -> Iterator[Chunk]:
    """Parquet record batches as chunks (native types kept; text Arrow-backed if asked)."""
    done = 0
    batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as error:
            raise ValueError(f"{path}: cannot read the Parquet file past row {done:,} ({error}); "
                             "rows before it were imported") from None
        frame = _batch_frame(batch, arrow_text)
        frame.columns = columns
        yield Chunk(frame, np.arange(done + 1, done + len(frame) + 1), [])
        done += len(frame)


def _batch_frame(batch: pa.RecordBatch, arrow_text: bool) -> pd.DataFrame:
    """A Parquet record batch as a frame; text that is not valid UTF-8 (which pandas cannot
    convert, and another writer may have put there) is decoded with surrogate escapes, so
    the contract check refuses those rows alone, naming the column."""
    broken = [position for position, column in enumerate(batch.columns)
              if (pa.types.is_string(column.type) or pa.types.is_large_string(column.type))
              and not _valid_utf8(column)]
    if not broken:
        return batch.to_pandas(types_mapper=_text_as_arrow if arrow_text else None)
    as_bytes = {position: batch.column(position).view(
        pa.large_binary() if pa.types.is_large_string(batch.column(position).type)
        else pa.binary()) for position in broken}
    columns = [as_bytes.get(position, column) for position, column in enumerate(batch.columns)]
    frame = pa.RecordBatch.from_arrays(columns, names=batch.schema.names).to_pandas(
        types_mapper=_text_as_arrow if arrow_text else None)
    for position in broken:
        frame.isetitem(position, pd.Series(
            [None if raw is None else raw.decode("utf-8", "surrogateescape")
             for raw in frame.iloc[:, position].tolist()], index=frame.index, dtype=object))
    return frame


def _valid_utf8(column: pa.Array) -> bool:
    """Whether every value of a text column is valid UTF-8."""
    try:
        column.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _csv_reader(stream: Any, columns: list[str],
                malformed: list[MalformedLine]) -> pa.RecordBatchReader:
    """A streaming pyarrow CSV reader with every column as text; bad lines go to `malformed`."""

    def keep_malformed(row: Any) -> str:
        # Serial parsing (use_threads=False) is what makes row.number known.
        malformed.append(MalformedLine(int(row.number) - 1, row.text, row.actual_columns,
                                       row.expected_columns))
        return "skip"

    return pa_csv.open_csv(
        stream,
        read_options=pa_csv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES,
                                        skip_rows=1, column_names=columns),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True,
                                          invalid_row_handler=keep_malformed),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in columns},
            strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True),
    )


def _csv_chunks(path: Path, columns: list[str], chunk_rows: int,
                arrow_text: bool) -> Iterator[Chunk]:
    """CSV record batches regrouped into chunks of `chunk_rows`, with exact row numbers."""
    malformed: list[MalformedLine] = []
    with open(path, "rb") as raw:
        stream = (pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "gzip")
                  if path.name.lower().endswith(".gz") else raw)
        reader = _csv_reader(stream, columns, malformed)
        pending: list[pa.RecordBatch] = []
        pending_rows, parsed, flushed = 0, 0, 0
        for batch in _batches(reader, path):
            pending.append(batch)
            pending_rows += batch.num_rows
            while pending_rows >= chunk_rows:
                table = pa.Table.from_batches(pending).combine_chunks()
                head, rest = table.slice(0, chunk_rows), table.slice(chunk_rows)
                yield _csv_chunk(head, parsed, malformed[flushed:], malformed, arrow_text)
                flushed = len(malformed)
                parsed += head.num_rows
                pending, pending_rows = rest.to_batches(), rest.num_rows
        if pending_rows or len(malformed) > flushed:
            table = (pa.Table.from_batches(pending) if pending
                     else pa.Table.from_pylist([], schema=reader.schema))
            yield _csv_chunk(table, parsed, malformed[flushed:], malformed, arrow_text)


def _batches(reader: pa.RecordBatchReader, path: Path) -> Iterator[pa.RecordBatch]:
    """The reader's batches; a parse failure becomes a ValueError naming the file."""
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as error:
            raise ValueError(f"{path}: cannot parse the CSV past this point ({error}); rows "
                             "before it were imported (re-importing stores them once)") from None
        yield batch


def _csv_chunk(table: pa.Table, parsed_before: int, new_malformed: list[MalformedLine],
               all_malformed: list[MalformedLine], arrow_text: bool) -> Chunk:
    """A chunk whose rows carry their data-row numbers, counting the skipped malformed lines."""
    skipped = np.sort(np.array([line.row_number for line in all_malformed], dtype="int64"))
    # Good rows before skipped line j = its row number - 1 - j; row k has as many skipped
    # lines before it as there are skipped lines with at most k good rows before them.
    good_before = skipped - 1 - np.arange(len(skipped))
    ordinals = np.arange(parsed_before, parsed_before + table.num_rows)
    row_numbers = ordinals + 1 + np.searchsorted(good_before, ordinals, side="right")
    frame = table.to_pandas(types_mapper=pd.ArrowDtype if arrow_text else None)
    return Chunk(frame, row_numbers, list(new_malformed), _line_breaks(table))


def _line_breaks(table: pa.Table) -> np.ndarray | None:
    """Per row, the first one-line contract field that holds a line break (else None).

    An unterminated quote makes the CSV parser read the lines after it into one value;
    such a row must not pass as valid, or the rows it swallowed would vanish unseen.
    """
    found = np.full(table.num_rows, None, dtype=object)
    for name in ONE_LINE_COLUMNS:
        if name in table.column_names:
            hits = np.asarray(pc.match_substring(table.column(name), "\n").fill_null(False))
            found[hits & (found == None)] = name  # noqa: E711 (elementwise comparison)
    return found if (found != None).any() else None  # noqa: E711


# -- events ---------------------------------------------------------------------------------


def malformed_frame(lines: list[MalformedLine], *, withhold_raw: bool = False) -> pd.DataFrame:
    """Dead-letter rows for lines the CSV parser could not split (raw line kept verbatim).

    With `withhold_raw` (the file has PII columns, which cannot be told apart in a line
    of the wrong shape) the line is not kept, so no e-mail or name reaches the table.
    """
    return pd.DataFrame({
        "row_number": [line.row_number for line in lines],
        "reason": MALFORMED_ROW,
        "field": "row",
        "detail": [f"row: expected {line.fields_expected} fields, found {line.fields_found}"
                   for line in lines],
        "raw": [None if withhold_raw else line.text for line in lines],
    })


def drop_pii(frame: pd.DataFrame, path: Path, report: IngestReport) -> pd.DataFrame:
    """The events frame without PII columns (they belong in the customers file only)."""
    found = pii_columns(frame.columns)
    if not found:
        return frame
    message = (f"{path}: dropped PII column(s) {', '.join(found)} from events "
               "(PII belongs in the customers file, which keeps it in the PII store)")
    if message not in report.warnings:
        report.warnings.append(message)
        log.warning(message)
    return frame.drop(columns=found)


def validate_chunk(chunk: Chunk, *, path: Path, now: pd.Timestamp,
                   known_products: set[str] | None, max_future_seconds: int,
                   report: IngestReport, timestamps: TimestampRules | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Valid rows and dead-letter rows (with file row numbers) of one chunk; adds the
    chunk's zone-less timestamps to `report.naive_timestamps`."""
    frame, row_numbers = drop_pii(chunk.frame, path, report), chunk.row_numbers
    parts = []
    if chunk.malformed:
        parts.append(malformed_frame(chunk.malformed, withhold_raw=report.pii_in_events))
    if chunk.line_break_in is not None:
        broken = chunk.line_break_in != None  # noqa: E711 (elementwise comparison)
        parts.append(line_break_frame(frame[broken], row_numbers[broken],
                                      chunk.line_break_in[broken]))
        frame, row_numbers = frame[~broken].reset_index(drop=True), row_numbers[~broken]
    result = validate_events(frame, now=now, known_products=known_products,
                             max_future_seconds=max_future_seconds, first_row_number=0,
                             timestamps=timestamps)
    report.naive_timestamps += result.naive_timestamps
    rejected = result.rejected
    if not rejected.empty:
        rejected = rejected.assign(row_number=row_numbers[rejected["row_number"].to_numpy()])
    rejected = pd.concat([*parts, rejected], ignore_index=True) if parts else rejected
    return result.valid, rejected


def line_break_frame(rows: pd.DataFrame, row_numbers: np.ndarray,
                     fields: np.ndarray) -> pd.DataFrame:
    """Dead-letter rows for one-line fields that hold a line break (likely an open quote)."""
    return pd.DataFrame({
        "row_number": row_numbers, "reason": MALFORMED_ROW, "field": fields,
        "detail": [f"{name}: contains a line break (an unterminated quote reads the lines "
                   "after it into this field)" for name in fields],
        "raw": rows_as_json(rows),
    })


@dataclass
class ReadPlan:
    """What reading and validating an events file needs (picklable: a reader process gets it)."""

    path: Path
    kind: str
    columns: list[str]
    chunk_rows: int
    now: pd.Timestamp
    known_products: set[str] | None
    max_future_seconds: int
    pii_in_events: bool
    timestamps: TimestampRules = field(default_factory=TimestampRules)


# valid rows, dead letters, warnings, zone-less timestamps read
ValidatedChunk = tuple[pd.DataFrame, pd.DataFrame, list[str], int]


# With a reader process, the first chunk goes out in growing pieces: the writer starts on
# an eighth of a chunk instead of waiting for a whole one to be read and validated.
FIRST_CHUNK_SHARES = (0.125, 0.125, 0.25, 0.5)


def validated_chunks(plan: ReadPlan, *, quick_start: bool = False) -> Iterator[ValidatedChunk]:
    """Each chunk of the file, read and validated: its valid rows, its dead-letter rows and
    the warnings it raised (e.g. PII columns dropped).

    Args:
        plan: the file and the validation settings.
        quick_start: yield the first chunk in `FIRST_CHUNK_SHARES` pieces.

    Raises:
        ValueError: the file cannot be read past some point (chunks before it were yielded).
    """
    notes = IngestReport(pii_in_events=plan.pii_in_events)  # collects warnings only
    for number, whole in enumerate(iter_chunks(plan.path, plan.kind, plan.columns,
                                               plan.chunk_rows, arrow_text=True)):
        for chunk in (whole.split(FIRST_CHUNK_SHARES) if quick_start and number == 0
                      else [whole]):
            seen, naive = len(notes.warnings), notes.naive_timestamps
            valid, rejected = validate_chunk(chunk, path=plan.path, now=plan.now,
                                             known_products=plan.known_products,
                                             max_future_seconds=plan.max_future_seconds,
                                             report=notes, timestamps=plan.timestamps)
            yield valid, rejected, notes.warnings[seen:], notes.naive_timestamps - naive


class ReaderProcess:
    """`validated_chunks` run in a child process, so reading and validating the next chunk
    overlaps with writing this one on another core.

    Threads would not overlap: the validation and the SQLite driver's per-row binding both
    need the GIL, and each process has its own. Chunks travel as Arrow IPC through a pipe
    that holds one chunk at most, so memory stays bounded; the child stops when the pipe
    breaks (this process gone) and is terminated by `close`.
    """

    def __init__(self, plan: ReadPlan) -> None:
        # fork: no second start-up (imports) before the first chunk; elsewhere spawn is safe.
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_send_validated_chunks,
                                        args=(plan, send, self._receive),
                                        name="tailor-ingest-reader", daemon=True)
        self._process.start()
        send.close()  # the child holds the only sending end: its exit means end of file

    def __iter__(self) -> Iterator[ValidatedChunk]:
        """The chunks in file order; raises what the reader raised, after the chunks before it.

        Raises:
            Exception: the reader's error (e.g. ValueError for a file unreadable past a point),
                or RuntimeError when the reader process died.
        """
        while True:
            try:
                message = self._receive.recv()
            except EOFError:
                self._process.join(timeout=10)
                raise RuntimeError(f"the ingest reader process stopped unexpectedly (exit code "
                                   f"{self._process.exitcode}); chunks before it were "
                                   "imported, re-importing stores them once") from None
            if message[0] == "done":
                return
            if message[0] == "error":
                raise message[1]
            yield (frame_from_arrow(message[1]), frame_from_arrow(message[2]), message[3],
                   message[4])

    def close(self) -> None:
        """Stop the reader (if it still runs) and release the pipe."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._receive.close()


def _send_validated_chunks(plan: ReadPlan, send: Any, receive: Any) -> None:
    """The reader process: each validated chunk through the pipe, then "done" or the error.

    `receive` is the importing process's end, which a forked child holds a copy of: closed
    at once, so that the importing process's death breaks the pipe instead of blocking it.
    """
    receive.close()
    try:
        for valid, rejected, warnings, naive in validated_chunks(plan, quick_start=True):
            send.send(("chunk", frame_to_arrow(valid), frame_to_arrow(rejected), warnings,
                       naive))
        send.send(("done",))
    except BrokenPipeError:  # the importing process is gone: nothing left to do
        return
    except BaseException as error:  # handed to the importing process, which raises it
        send.send(("error", _picklable(error)))
    finally:
        send.close()


def _picklable(error: BaseException) -> BaseException:
    """The error itself when it can cross the pipe, else a RuntimeError saying what it was."""
    try:
        pickle.dumps(error)
        return error
    except Exception:  # any pickling failure: keep the type name and message
        return RuntimeError(f"{type(error).__name__}: {error}")


def frame_to_arrow(frame: pd.DataFrame) -> bytes:
    """A frame as Arrow IPC stream bytes (columns and dtypes kept, index dropped)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def frame_from_arrow(payload: bytes) -> pd.DataFrame:
    """The frame `frame_to_arrow` wrote."""
    # split_blocks: no consolidation copy; the table is dropped right after.
    return pa.ipc.open_stream(payload).read_all().to_pandas(split_blocks=True,
                                                            self_destruct=True)


def write_chunk(store: EventStore, report: IngestReport, source: str, valid: pd.DataFrame,
                rejected: pd.DataFrame, policy: RetryPolicy = RetryPolicy()) -> None:
    """Store one chunk's valid rows and dead letters, then add them to the report.

    Counts reach the report only once their rows are committed. A dropped store connection
    is retried as `policy` says, exactly once per row (`tailor.events.retry`).
    """
    what = f"rows from {report.received + 1:,} of {source}"
    inserted = insert_events_exactly(store, valid, report.batch_id, what, policy)
    insert_rejected_once(store, rejected, report.batch_id, source,
                         sum(report.rejected.values()), what, policy)
    report.received += len(valid) + len(rejected)
    report.accepted += inserted
    report.duplicates += len(valid) - inserted
    if not rejected.empty:
        report.count_rejected(rejected["reason"])


# -- products and customers -----------------------------------------------------------------


def load_products(store: EventStore, source: InputFile, chunk_rows: int,
                  report: IngestReport, policy: RetryPolicy = RetryPolicy()) -> None:
    """Upsert the catalogue; rows without a product_id are skipped and counted in a warning.
    Upserts are idempotent, so a dropped connection is simply retried (`policy`)."""
    path, kind = source.path, source.kind
    columns = file_columns(path, kind)
    require_columns(path, columns, ("product_id",))
    skipped, bad_numbers = 0, {name: 0 for name in ("price", "rating", "inventory")}
    with_nul: dict[str, int] = {}
    not_unicode: dict[str, int] = {}
    for chunk in iter_chunks(path, kind, columns, chunk_rows):
        frame = chunk.frame
        skipped += len(chunk.malformed) + int(_blank(frame["product_id"]).sum())
        for name in bad_numbers:
            if name in frame.columns:
                numbers = pd.to_numeric(frame[name], errors="coerce")
                bad_numbers[name] += int((frame[name].notna() & numbers.isna()).sum())
        frame = frame[~_blank(frame["product_id"])]
        unstorable = _nul_rows(frame, PRODUCT_COLUMNS, with_nul) \
            | _not_unicode_rows(frame, not_unicode)
        rows = frame[~unstorable]
        report.products += with_retries(lambda _: store.upsert_products(rows),
                                        f"products of {path}", policy)
    if skipped:
        _warn(report, f"{path}: skipped {skipped:,} product row(s) without a product_id "
                      "or with the wrong number of fields")
    _warn_nul(report, path, "product", with_nul)
    _warn_not_unicode(report, path, "product", not_unicode)
    for name, count in bad_numbers.items():
        if count:
            _warn(report, f"{path}: {name}: {count:,} value(s) not a number, stored as empty")


def load_customers(store: EventStore, source: InputFile, settings: Any, chunk_rows: int,
                   report: IngestReport, policy: RetryPolicy = RetryPolicy()) -> None:
    """Upsert pseudonymous customers; PII columns go to the (encrypted) PII store only.
    Upserts are idempotent, so a dropped connection is simply retried (`policy`)."""
    path, kind = source.path, source.kind
    columns = file_columns(path, kind)
    require_columns(path, columns, ("customer_id",))
    private = pii_columns(columns)
    pii_store = open_pii_store(settings) if private else None
    skipped = 0
    with_nul: dict[str, int] = {}
    not_unicode: dict[str, int] = {}
    try:
        for chunk in iter_chunks(path, kind, columns, chunk_rows):
            frame = chunk.frame[~_blank(chunk.frame["customer_id"])]
            skipped += len(chunk.malformed) + len(chunk.frame) - len(frame)
            # PII columns too: the PII store encrypts UTF-8 bytes, which such text has none of.
            frame = frame[~(_nul_rows(frame, CUSTOMER_COLUMNS, with_nul)
                            | _not_unicode_rows(frame, not_unicode))]
            if pii_store is not None:
                pii_store.upsert(frame[["customer_id", *private]])
            rows = frame.drop(columns=private)
            report.customers += with_retries(lambda _: store.upsert_customers(rows),
                                             f"customers of {path}", policy)
    finally:
        if pii_store is not None:
            pii_store.close()
    if skipped:  # counts only: these lines may hold PII, so they are neither logged nor kept
        _warn(report, f"{path}: skipped {skipped:,} customer row(s) without a customer_id "
                      "or with the wrong number of fields")
    _warn_nul(report, path, "customer", with_nul)
    _warn_not_unicode(report, path, "customer", not_unicode)


def _nul_rows(frame: pd.DataFrame, columns: tuple[str, ...], counts: dict[str, int]
              ) -> pd.Series:
    """Mask of rows holding a NUL character in one of the store's own text `columns`
    (PostgreSQL text cannot store it, and the whole upsert would fail); adds the rows found
    per column to `counts`. Other columns are kept as JSON, which escapes a NUL."""
    found = pd.Series(False, index=frame.index)
    for name in columns:
        if name not in frame.columns or frame[name].dtype.kind not in "OSUT":
            continue
        text = frame[name].astype("string")
        has_nul = text.str.contains(NUL, regex=False).fillna(False).astype(bool)
        if has_nul.any():
            counts[name] = counts.get(name, 0) + int(has_nul.sum())
            found |= has_nul
    return found


def _not_unicode_rows(frame: pd.DataFrame, counts: dict[str, int]) -> pd.Series:
    """Mask of rows holding text that is not valid Unicode (a Parquet file's invalid UTF-8,
    read with surrogate escapes) in any column; no store can encode it. Adds the rows found
    per column to `counts`."""
    found = pd.Series(False, index=frame.index)
    for name in frame.columns:
        if frame[name].dtype != object:
            continue  # Arrow-backed text is valid UTF-8 by construction
        values = frame[name].tolist()
        try:
            pa.array(values, type=pa.string(), from_pandas=True)  # fast when all is well
            continue
        except (UnicodeEncodeError, pa.ArrowInvalid, pa.ArrowTypeError):
            pass
        bad = pd.Series([isinstance(value, str) and not is_storable_text(value)
                         for value in values], index=frame.index)
        if bad.any():
            counts[name] = counts.get(name, 0) + int(bad.sum())
            found |= bad
    return found


def _warn_not_unicode(report: IngestReport, path: Path, kind: str,
                      counts: dict[str, int]) -> None:
    """One warning naming each column where rows were skipped for text that is not UTF-8."""
    if counts:
        columns = ", ".join(f"{name} ({count:,})" for name, count in counts.items())
        _warn(report, f"{path}: skipped {kind} row(s) with text that is not valid UTF-8 in "
                      f"{columns}; fix the file's encoding and import it again")


def _warn_nul(report: IngestReport, path: Path, kind: str, counts: dict[str, int]) -> None:
    """One warning naming each column where rows were skipped for a NUL character (counts
    only: customer rows may hold PII, so their values are neither logged nor kept)."""
    if counts:
        columns = ", ".join(f"{name} ({count:,})" for name, count in counts.items())
        _warn(report, f"{path}: skipped {kind} row(s) with a NUL character in {columns}; "
                      "remove it and import the file again")


def _blank(values: pd.Series) -> pd.Series:
    """Mask of missing or whitespace-only values."""
    return values.isna() | (values.astype(str).str.strip() == "")


def _warn(report: IngestReport, message: str) -> None:
    report.warnings.append(message)
    log.warning(message)


# -- the job ---------------------------------------------------------------------------------


def _progress_bar(enabled: bool) -> Any:
    """A rich progress display on stderr (disabled: a no-op with the same interface)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("rows"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)


def ingest_files(settings: Any, events_path: Path | str, *, products_path: Path | str | None = None,
                 customers_path: Path | str | None = None, now: pd.Timestamp | None = None,
                 progress: bool = True) -> IngestReport:
    """Import products, customers (PII split off) and events into the stores the settings name.

    Args:
        settings: resolved `Settings` (store URLs, chunk size, future-time tolerance, home).
        events_path: events file (.csv, .csv.gz, .parquet, .pq).
        products_path: optional catalogue file, loaded first (enables the unknown-product check).
        customers_path: optional customers file; PII columns go to the PII store only.
        now: the receive time for the future-timestamp check (default: the current time).
        progress: show a rich progress bar on stderr.

    Returns:
        The `IngestReport` (accepted, duplicates, rejected per reason, ...).

    Raises:
        FileNotFoundError, IsADirectoryError: a path is not a file.
        ContractError: a required column is missing (nothing is written).
        ValueError: unknown format, empty or non-UTF-8 file (nothing is written), or a CSV
            that cannot be parsed past some point (rows before it are kept; re-run after fixing).
    """
    started = time.perf_counter()
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    plan = _check_inputs(Path(events_path), products_path, customers_path)
    store = open_event_store(settings.event_store_url)
    report = IngestReport(batch_id=f"import-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
                          store=redact_url(settings.event_store_url))
    dropped: list[str] = []
    policy = replace(RetryPolicy.from_settings(settings), on_retry=dropped.append)
    try:
        if "products" in plan:
            load_products(store, plan["products"], settings.ingest_chunk_rows, report, policy)
        if "customers" in plan:
            load_customers(store, plan["customers"], settings, settings.ingest_chunk_rows, report,
                           policy)
        _load_events(store, plan["events"], settings, now, progress, report, policy)
    finally:
        report.seconds = time.perf_counter() - started
        store.close()
    if dropped:
        _warn(report, f"the event store connection dropped {len(dropped)} time(s) (first: "
                      f"{dropped[0]}); each write was tried again and its rows stored once")
    log.info("ingest %s: accepted %d, duplicates %d, rejected %s", report.batch_id,
             report.accepted, report.duplicates, report.rejected or "none")
    return report


def _check_inputs(events_path: Path, products_path: Path | str | None,
                  customers_path: Path | str | None) -> dict[str, InputFile]:
    """Check every file and header before anything is written; returns label → file."""
    plan: dict[str, InputFile] = {}
    for label, raw in (("products", products_path), ("customers", customers_path),
                       ("events", events_path)):
        if raw is not None:
            plan[label] = check_input_file(Path(raw), label)
    events = plan["events"]
    try:
        check_event_columns(file_columns(events.path, events.kind))
    except ContractError as error:
        raise ContractError(f"{events.path}: {error}") from None
    for label, required in (("products", "product_id"), ("customers", "customer_id")):
        if label in plan:
            found = file_columns(plan[label].path, plan[label].kind)
            require_columns(plan[label].path, found, (required,))
    return plan


def _load_events(store: EventStore, source: InputFile, settings: Any, now: pd.Timestamp,
                 progress: bool, report: IngestReport, policy: RetryPolicy) -> None:
    """Stream the events file through validation into the store; records the ingest run,
    as `aborted` with the reason when it stops early (the counts are what was committed).

    A file of more than one chunk is read and validated in a `ReaderProcess` while this
    process writes; a smaller one in this process (there is nothing to overlap).
    """
    path = source.path
    columns = file_columns(path, source.kind)
    report.pii_in_events = bool(pii_columns(columns))
    plan = ReadPlan(path=path, kind=source.kind, columns=columns,
                    chunk_rows=settings.ingest_chunk_rows, now=now,
                    known_products=with_retries(lambda _: store.product_ids(),
                                                "the catalogue", policy) or None,
                    max_future_seconds=settings.ingest_max_future_seconds,
                    pii_in_events=report.pii_in_events,
                    timestamps=TimestampRules.from_settings(settings))
    report.naive_timezone = plan.timestamps.naive_timezone
    run_started = pd.Timestamp.now(tz="UTC")
    # Started before the progress bar's thread: a forked child copies no running thread.
    reader = ReaderProcess(plan) if source.rows_estimate > plan.chunk_rows else None
    status, reason = RUN_ABORTED, "interrupted"
    try:
        with _progress_bar(progress) as bar:
            task = bar.add_task(f"ingest {path.name}", total=max(source.rows_estimate, 1))
            for valid, rejected, warnings, naive in (reader or validated_chunks(plan)):
                write_chunk(store, report, str(path), valid, rejected, policy)
                report.naive_timestamps += naive
                for message in warnings:
                    if message not in report.warnings:
                        report.warnings.append(message)
                bar.update(task, completed=min(report.received, source.rows_estimate))
            bar.update(task, completed=source.rows_estimate)
        status, reason = RUN_FINISHED, ""
    except Exception as error:
        reason = f"{type(error).__name__}: {one_line(error)}"
        raise
    finally:
        if reader is not None:
            reader.close()
        _record_run(store, IngestRun(
            batch_id=report.batch_id, source=str(path), started_at=run_started,
            finished_at=pd.Timestamp.now(tz="UTC"), received=report.received,
            accepted=report.accepted, duplicates=report.duplicates,
            rejected=dict(report.rejected), status=status, abort_reason=reason), policy)
    if report.received == 0:
        _warn(report, f"{path}: no data rows (header only); nothing imported")


def _record_run(store: EventStore, run: IngestRun, policy: RetryPolicy) -> None:
    """Record the run (retried like the writes). An aborted run whose record cannot be
    written either is logged: the error that aborted it is the one to raise."""
    try:
        with_retries(lambda _: store.record_ingest(run), "the ingest run", policy)
    except StoreUnavailable as error:
        if run.status == RUN_FINISHED:
            raise
        log.error("ingest %s aborted (%s), and its run could not be recorded: %s",
                  run.batch_id, run.abort_reason, error)
