"""Reading an events file in chunks: CSV (plain or gzip, any delimiter and encoding) through
pyarrow's streaming reader, Parquet by record batch, JSON Lines through `jsonl`.

Reads the file (local or through fsspec); writes nothing. CSV values arrive as text; a
malformed CSV line becomes a `MalformedLine` with its raw text, and a value that swallowed
line breaks is marked for the contract check. A Parquet float column's NaN (which pandas
cannot tell from a missing value) arrives as the text `nan`, for the contract to refuse.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from tailor.errors import InputError
from tailor.events.ingest.files import InputFile, parquet_file
from tailor.events.ingest.formats import CSV, JSON_LINES, UTF8, is_gzip, open_binary
from tailor.events.ingest.report import Chunk, MalformedLine

CSV_BLOCK_BYTES = 4 << 20
# Contract columns whose values never span lines (query and properties may).
ONE_LINE_COLUMNS = ("event_id", "customer_id", "event_type", "product_id", "timestamp",
                    "session_id", "price", "quantity", "order_id", "device_type")


def iter_chunks(source: InputFile, columns: list[str], chunk_rows: int, *,
                arrow_text: bool = False, one_line: dict[str, str] | None = None,
                json_plan: Any = None) -> Iterator[Chunk]:
    """Stream a file as chunks of at most `chunk_rows` rows (CSV values as text).

    Args:
        source: the checked file; columns: its normalised column names.
        chunk_rows: rows per chunk.
        arrow_text: text stays Arrow-backed (`pd.ArrowDtype`) instead of Python objects;
            `validate_events` reads those without a conversion.
        one_line: {file column: contract column} of the one-line columns to check for line
            breaks (default: the contract's own names).
        json_plan: JSON Lines only: the `JsonPlan` saying where each column is read from.

    Raises:
        InputError: the file cannot be parsed past some point (rows before it were yielded).
    """
    if source.kind == CSV:
        yield from _csv_chunks(source, columns, chunk_rows, arrow_text, one_line)
    elif source.kind == JSON_LINES:
        from tailor.events.ingest.jsonl import iter_jsonl_chunks

        yield from iter_jsonl_chunks(source.path, source.encoding, json_plan, chunk_rows)
    else:
        yield from _parquet_chunks(source, columns, chunk_rows, arrow_text)


def _text_as_arrow(arrow_type: pa.DataType) -> pd.ArrowDtype | None:
    """`pd.ArrowDtype` for text columns, None (pandas' own dtype) for the others."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.ArrowDtype(arrow_type)
    return None


def _parquet_chunks(source: InputFile, columns: list[str], chunk_rows: int,
                    arrow_text: bool) -> Iterator[Chunk]:
    """Parquet record batches as chunks (native types kept; text Arrow-backed if asked)."""
    done = 0
    batches = parquet_file(source.path).iter_batches(batch_size=chunk_rows)
    while True:
        try:
            batch = _nan_as_text(next(batches))
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as error:
            raise InputError(f"{source.shown}: cannot read the Parquet file past row {done:,} "
                             f"({error}); rows before it were imported") from None
        frame = _batch_frame(batch, arrow_text)
        frame.columns = columns
        yield Chunk(frame, np.arange(done + 1, done + len(frame) + 1), [])
        done += len(frame)


def _nan_as_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Float columns holding NaN as text ("nan", "1.5"), so that NaN stays apart from a
    missing value (pandas makes both NaN); other batches as they are."""
    columns = list(batch.columns)
    changed = False
    for position, column in enumerate(columns):
        if pa.types.is_floating(column.type) and pc.any(pc.is_nan(column)).as_py():
            columns[position], changed = column.cast(pa.string()), True
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names) if changed else batch


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


def _csv_reader(stream: Any, source: InputFile, columns: list[str],
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
                                        skip_rows=1, column_names=columns,
                                        encoding="utf8" if source.encoding == UTF8
                                        else source.encoding),
        parse_options=pa_csv.ParseOptions(delimiter=source.delimiter, newlines_in_values=True,
                                          invalid_row_handler=keep_malformed),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in columns},
            strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True),
    )


def _csv_chunks(source: InputFile, columns: list[str], chunk_rows: int, arrow_text: bool,
                one_line: dict[str, str] | None) -> Iterator[Chunk]:
    """CSV record batches regrouped into chunks of `chunk_rows`, with exact row numbers."""
    malformed: list[MalformedLine] = []
    one_line = one_line if one_line is not None else {name: name for name in ONE_LINE_COLUMNS}
    path = source.shown
    with open_binary(source.path) as raw:
        stream = (pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "gzip")
                  if is_gzip(source.path, raw) else raw)
        reader = _csv_reader(stream, source, columns, malformed)
        pending: list[pa.RecordBatch] = []
        pending_rows, parsed, flushed = 0, 0, 0
        for batch in _batches(reader, path):
            pending.append(batch)
            pending_rows += batch.num_rows
            while pending_rows >= chunk_rows:
                table = pa.Table.from_batches(pending).combine_chunks()
                head, rest = table.slice(0, chunk_rows), table.slice(chunk_rows)
                yield _csv_chunk(head, parsed, malformed[flushed:], malformed, arrow_text,
                                 one_line)
                flushed = len(malformed)
                parsed += head.num_rows
                pending, pending_rows = rest.to_batches(), rest.num_rows
        if pending_rows or len(malformed) > flushed:
            table = (pa.Table.from_batches(pending) if pending
                     else pa.Table.from_pylist([], schema=reader.schema))
            yield _csv_chunk(table, parsed, malformed[flushed:], malformed, arrow_text,
                             one_line)


def _batches(reader: pa.RecordBatchReader, path: str) -> Iterator[pa.RecordBatch]:
    """The reader's batches; a parse failure becomes an InputError naming the file."""
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as error:
            raise InputError(f"{path}: cannot parse the CSV past this point ({error}); rows "
                             "before it were imported (re-importing stores them once)") from None
        yield batch


def _csv_chunk(table: pa.Table, parsed_before: int, new_malformed: list[MalformedLine],
               all_malformed: list[MalformedLine], arrow_text: bool,
               one_line: dict[str, str]) -> Chunk:
    """A chunk whose rows carry their data-row numbers, counting the skipped malformed lines."""
    skipped = np.sort(np.array([line.row_number for line in all_malformed], dtype="int64"))
    # Good rows before skipped line j = its row number - 1 - j; row k has as many skipped
    # lines before it as there are skipped lines with at most k good rows before them.
    good_before = skipped - 1 - np.arange(len(skipped))
    ordinals = np.arange(parsed_before, parsed_before + table.num_rows)
    row_numbers = ordinals + 1 + np.searchsorted(good_before, ordinals, side="right")
    frame = table.to_pandas(types_mapper=pd.ArrowDtype if arrow_text else None)
    return Chunk(frame, row_numbers, list(new_malformed), _line_breaks(table, one_line))


def _line_breaks(table: pa.Table, one_line: dict[str, str]) -> np.ndarray | None:
    """Per row, the first one-line contract field that holds a line break (else None).

    An unterminated quote makes the CSV parser read the lines after it into one value;
    such a row must not pass as valid, or the rows it swallowed would vanish unseen.
    `one_line` maps the file's columns to the contract fields they are read as.
    """
    found = np.full(table.num_rows, None, dtype=object)
    for column, name in one_line.items():
        if column in table.column_names:
            hits = np.asarray(pc.match_substring(table.column(column), "\n").fill_null(False))
            found[hits & (found == None)] = name  # noqa: E711 (elementwise comparison)
    return found if (found != None).any() else None  # noqa: E711
