"""Whole-file checks before an import writes anything: where the file is, its format and
size, its text encoding (valid UTF-8 unless `--encoding` names another), the CSV delimiter,
and the header's columns.

Reads the input files (their first bytes, their header, a Parquet footer, the first lines
of JSON Lines, or the whole file for the encoding scan), local or through fsspec; writes
nothing. Problems raise `InputError`, `ContractError` (an `InputError` too) or the `OSError`
of a missing file.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tailor.errors import InputError
from tailor.events.ingest.formats import (
    CSV,
    JSON_LINES,
    PARQUET,
    UTF8,
    check_exists,
    file_format,
    is_url,
    open_binary,
    open_decompressed,
    read_text_lines,
    shown,
    sniff_delimiter,
    text_sample,
)
from tailor.events.schema import CUSTOMER_COLUMNS, EVENT_COLUMNS, PRODUCT_COLUMNS, ContractError

UTF8_SCAN_BYTES = 16 << 20
# Lower-cased header names that map onto a contract column (e.g. "Customer_ID").
_KNOWN_COLUMNS = set(EVENT_COLUMNS) | set(PRODUCT_COLUMNS) | set(CUSTOMER_COLUMNS)


@dataclass
class InputFile:
    """A file that passed the whole-file checks."""

    path: "str | Path"  # a local path, or an fsspec URL (s3://, memory://, file://)
    kind: str  # 'csv', 'jsonl' or 'parquet'
    rows_estimate: int  # data rows (CSV: lines after the header, exact without quoted newlines)
    delimiter: str = ","  # CSV only
    encoding: str = UTF8  # CSV and JSON Lines

    @property
    def shown(self) -> str:
        """The location as messages show it (a URL's password hidden)."""
        return shown(self.path)

    def describe(self) -> dict[str, Any]:
        """Format, delimiter (CSV) and encoding, for the report."""
        described: dict[str, Any] = {"file": self.shown, "format": self.kind}
        if self.kind == CSV:
            described["delimiter"] = self.delimiter
        if self.kind != PARQUET:
            described["encoding"] = self.encoding
        return described


def check_input_file(location: "str | Path", label: str, *, forced_format: str = "",
                     delimiter: str = "", encoding: str = UTF8) -> InputFile:
    """Check a file can be imported, before anything is written.

    Args:
        location: a local path or an fsspec URL; label: events, products or customers.
        forced_format: csv, jsonl or parquet ('' = from the name).
        delimiter: the CSV delimiter ('' = sniffed from the first lines).
        encoding: the text encoding (UTF-8 is checked over the whole file).

    Raises:
        FileNotFoundError, IsADirectoryError: the location is not a file.
        InputError: unknown format, empty file, text not in the encoding, a JSON array, a
            gzip file that is not gzip or is cut short.
    """
    location = location if is_url(location) else Path(location)
    size = check_exists(location, label)
    kind = file_format(location, forced_format)
    if size == 0:
        raise InputError(f"{shown(location)}: empty file (0 bytes); nothing to import")
    if kind == PARQUET:
        return InputFile(location, kind, _parquet_rows(location))
    try:
        lines, problem = scan_text_lines(location, encoding)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise InputError(f"{shown(location)}: not a readable gzip file ({error}); the file was "
                         "rejected as a whole and nothing from it was imported") from None
    if problem:
        hint = ("re-encode it as UTF-8, e.g. `iconv -f latin1 -t utf-8`, or name its "
                "encoding with --encoding, and import again") if encoding == UTF8 \
            else "check --encoding and import again"
        raise InputError(f"{shown(location)}: {problem}; the file was rejected as a whole and "
                         f"nothing from it was imported ({hint})")
    sample = text_sample(location, encoding)
    if kind == JSON_LINES:
        if sample.lstrip().startswith("["):
            raise InputError(f"{shown(location)}: a JSON array, not JSON Lines (one object per "
                             "line); convert it, e.g. `jq -c '.[]' FILE > FILE.jsonl`")
        return InputFile(location, kind, lines, encoding=encoding)
    return InputFile(location, kind, max(lines - 1, 0), delimiter or sniff_delimiter(sample),
                     encoding)


def parquet_file(location: "str | Path") -> pq.ParquetFile:
    """A Parquet file, local or through fsspec; InputError when it is not Parquet."""
    try:
        return pq.ParquetFile(open_binary(location) if is_url(location) else location)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{shown(location)}: not a readable Parquet file ({error})") from None


def _parquet_rows(location: "str | Path") -> int:
    """Rows in a Parquet file's footer; InputError when it is not Parquet."""
    return parquet_file(location).metadata.num_rows


def scan_text_lines(location: "str | Path", encoding: str = UTF8) -> tuple[int, str | None]:
    """Lines of a (gzipped) text file, and its first byte that is not text in `encoding`
    described (or None). Lines count a last line without a final newline too."""
    if encoding == UTF8:
        return scan_utf8_lines(location)
    lines, offset, last = 0, 0, b"\n"
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    with open_decompressed(location) as stream:
        while block := stream.read(UTF8_SCAN_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                return lines, (f"not valid {encoding}: {error.reason} near byte offset "
                               f"{offset + max(error.start, 0)}")
            lines += block.count(b"\n")
            offset += len(block)
            last = block[-1:]
    return lines + (last != b"\n"), None


def scan_utf8_lines(location: "str | Path") -> tuple[int, str | None]:
    """Lines of a (gzipped) text file, and its first invalid UTF-8 byte described (or None).

    Lines count a last line without a final newline too.
    """
    offset, lines, carry, last = 0, 0, b"", b"\n"
    decoder_error = codecs.lookup("utf-8").decode
    with open_decompressed(location) as stream:
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


def csv_header(source: InputFile) -> list[str]:
    """The header's column names, normalised (see `normalise_columns`).

    Raises:
        InputError: the file has no header line.
    """
    with open_decompressed(source.path) as stream:
        text = read_text_lines(stream, "utf-8-sig" if source.encoding == UTF8
                               else source.encoding)
        header = next(csv.reader(text, delimiter=source.delimiter), None)
    if not header or all(not name.strip() for name in header):
        raise InputError(f"{source.shown}: empty file (no header line); nothing to import")
    return normalise_columns(header, source.shown)


def normalise_columns(names: list[str], where: "str | Path") -> list[str]:
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
        raise ContractError(f"{where}: duplicate column(s) {', '.join(repeated)} in the header")
    return normalised


def file_columns(source: InputFile) -> list[str]:
    """Column names of a CSV header or a Parquet schema (normalised), or the keys of the
    first JSON lines (as written, nested ones as dotted paths)."""
    if source.kind == CSV:
        return csv_header(source)
    if source.kind == JSON_LINES:
        from tailor.events.ingest.jsonl import sample_keys

        return sample_keys(source.path, source.encoding)
    try:
        names = parquet_file(source.path).schema_arrow.names
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{source.shown}: not a readable Parquet file ({error})") from None
    return normalise_columns(names, source.shown)


def require_columns(where: "str | Path", columns: list[str], required: tuple[str, ...]
                    ) -> None:
    """Raise ContractError naming the file and each required column it lacks."""
    missing = [name for name in required if name not in columns]
    if missing:
        raise ContractError(f"{where}: missing required column(s): {', '.join(missing)} "
                            f"(found: {', '.join(columns) or 'none'})")
