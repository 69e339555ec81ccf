"""Whole-file checks before an import writes anything: the format, the size, valid UTF-8,
and the header's columns.

Reads the input files (their first bytes, their header, a Parquet footer, or the whole file
for the UTF-8 scan); writes nothing. Problems raise `InputError`, `ContractError` (an `InputError`
too) or the `OSError` of a missing file.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import pyarrow as pa
import pyarrow.parquet as pq

from tailor.errors import InputError
from tailor.events.schema import CUSTOMER_COLUMNS, EVENT_COLUMNS, PRODUCT_COLUMNS, ContractError

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
ACCEPTED_FORMATS = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
UTF8_SCAN_BYTES = 16 << 20
# Lower-cased header names that map onto a contract column (e.g. "Customer_ID").
_KNOWN_COLUMNS = set(EVENT_COLUMNS) | set(PRODUCT_COLUMNS) | set(CUSTOMER_COLUMNS)


def file_format(path: Path) -> str:
    """'csv' or 'parquet' from the file name.

    Raises:
        InputError: any other extension (the message lists the accepted ones).
    """
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise InputError(f"{path}: unsupported file format; accepted formats: {ACCEPTED_FORMATS}")


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
        InputError: unknown format, empty file, or (CSV) not valid UTF-8.
    """
    if path.is_dir():
        raise IsADirectoryError(f"{label} file {path} is a directory; "
                                "expected a CSV or Parquet file")
    if not path.exists():
        raise FileNotFoundError(f"{label} file not found: {path}")
    kind = file_format(path)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes); nothing to import")
    if kind == "parquet":
        return InputFile(path, kind, _parquet_rows(path))
    lines, problem = scan_utf8_lines(path)
    if problem:
        raise InputError(f"{path}: {problem}; the file was rejected as a whole and nothing "
                         "from it was imported (re-encode it as UTF-8, e.g. "
                         "`iconv -f latin1 -t utf-8`, and import again)")
    return InputFile(path, kind, max(lines - 1, 0))


def _parquet_rows(path: Path) -> int:
    """Rows in a Parquet file's footer; InputError when it is not Parquet."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{path}: not a readable Parquet file ({error})") from None


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
        InputError: the file has no header line.
    """
    with _open_bytes(path) as stream:
        text = io.TextIOWrapper(cast(BinaryIO, stream), encoding="utf-8-sig", newline="")
        header = next(csv.reader(text), None)
    if not header or all(not name.strip() for name in header):
        raise InputError(f"{path}: empty file (no header line); nothing to import")
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
        raise InputError(f"{path}: not a readable Parquet file ({error})") from None
    return normalise_columns(names, path)


def require_columns(path: Path, columns: list[str], required: tuple[str, ...]) -> None:
    """Raise ContractError naming the file and each required column it lacks."""
    missing = [name for name in required if name not in columns]
    if missing:
        raise ContractError(f"{path}: missing required column(s): {', '.join(missing)} "
                            f"(found: {', '.join(columns) or 'none'})")
