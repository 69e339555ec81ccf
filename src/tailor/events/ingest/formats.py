"""Where an import's files come from and what they hold: local paths or fsspec URLs
(`s3://`, `memory://`, `file://`, as the lake reads them), the format from the name, the CSV
delimiter from the first lines, and the text encoding.

Reads the file's first bytes (and, through fsspec, its size and kind); writes nothing.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO, cast

from tailor.errors import InputError
from tailor.urls import redact_url

CSV, JSON_LINES, PARQUET = "csv", "jsonl", "parquet"
FORMATS = (CSV, JSON_LINES, PARQUET)
# Names that say the format; `.gz` wraps CSV or JSON Lines.
SUFFIXES: tuple[tuple[str, str], ...] = (
    (".csv", CSV), (".csv.gz", CSV), (".tsv", CSV), (".tsv.gz", CSV), (".txt", CSV),
    (".txt.gz", CSV), (".jsonl", JSON_LINES), (".jsonl.gz", JSON_LINES),
    (".ndjson", JSON_LINES), (".ndjson.gz", JSON_LINES), (".json", JSON_LINES),
    (".json.gz", JSON_LINES), (".parquet", PARQUET), (".pq", PARQUET),
)
ACCEPTED_FORMATS = ", ".join(suffix for suffix, _ in SUFFIXES)
# Delimiters told apart by sniffing, most likely first (a tie goes to the earlier one).
SNIFFED_DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}
SNIFF_BYTES = 64 << 10
UTF8 = "utf-8"


def is_url(location: "str | Path") -> bool:
    """Whether the location is an fsspec URL (`scheme://...`) rather than a local path."""
    return isinstance(location, str) and "://" in location


def shown(location: "str | Path") -> str:
    """The location as messages and reports show it (a URL's password hidden)."""
    return redact_url(str(location)) if is_url(location) else str(location)


def base_name(location: "str | Path") -> str:
    """The file name at the end of a path or URL (query strings ignored)."""
    text = str(location).split("?", 1)[0].rstrip("/")
    return PurePosixPath(text).name if is_url(location) else Path(text).name


def file_format(location: "str | Path", forced: str = "") -> str:
    """'csv', 'jsonl' or 'parquet': `forced` if given, else from the file name.

    Raises:
        InputError: the name says no format (the message lists the accepted ones and the flag).
    """
    if forced:
        return forced
    name = base_name(location).lower()
    for suffix, kind in sorted(SUFFIXES, key=lambda pair: -len(pair[0])):
        if name.endswith(suffix):
            return kind
    raise InputError(f"{shown(location)}: unsupported file format; accepted formats: "
                     f"{ACCEPTED_FORMATS} (or name the format with --format csv|jsonl|parquet)")


def is_gzip(location: "str | Path", stream: BinaryIO) -> bool:
    """Whether the file is gzip-compressed: by its name, else by the first two bytes of its
    open `stream` (read, then the stream is wound back)."""
    if base_name(location).lower().endswith(".gz"):
        return True
    head = stream.read(2)
    stream.seek(0)
    return head == b"\x1f\x8b"


def open_binary(location: "str | Path") -> BinaryIO:
    """The file's raw bytes: a local file, or the fsspec file of a URL."""
    if not is_url(location):
        return open(location, "rb")
    import fsspec

    return cast(BinaryIO, fsspec.open(str(location), "rb").open())


def open_decompressed(location: "str | Path") -> BinaryIO:
    """The file's bytes, gunzipped when it is gzip."""
    raw = open_binary(location)
    if is_gzip(location, raw):
        return cast(BinaryIO, _GzipClosingSource(raw))
    return raw


class _GzipClosingSource(gzip.GzipFile):
    """A gunzipping reader that closes the file under it too (GzipFile leaves it open)."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__(fileobj=source, mode="rb")
        self._source = source

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._source.close()


def check_exists(location: "str | Path", label: str) -> int:
    """The file's size in bytes.

    Raises:
        FileNotFoundError, IsADirectoryError: the location is not a file.
    """
    if not is_url(location):
        path = Path(location)
        if path.is_dir():
            raise IsADirectoryError(f"{label} file {path} is a directory; expected a CSV, "
                                    "JSON Lines or Parquet file")
        if not path.exists():
            raise FileNotFoundError(f"{label} file not found: {path}")
        return path.stat().st_size
    import fsspec

    try:
        fs, inner = fsspec.core.url_to_fs(str(location))
    except ImportError as error:  # e.g. s3:// without s3fs installed
        raise InputError(f"{shown(location)}: {error}") from None
    except ValueError as error:  # an unknown scheme
        raise InputError(f"{shown(location)}: {error}") from None
    if not fs.exists(inner):
        raise FileNotFoundError(f"{label} file not found: {shown(location)}")
    if fs.isdir(inner):
        raise IsADirectoryError(f"{label} file {shown(location)} is a directory; expected a "
                                "CSV, JSON Lines or Parquet file")
    return int(fs.size(inner) or 0)


def encoding_name(name: str, label: str = "--encoding") -> str:
    """The codec's canonical name ('' means UTF-8).

    Raises:
        InputError: Python knows no such text encoding (the message names `label`).
    """
    if not name.strip():
        return UTF8
    try:
        info = codecs.lookup(name.strip())
    except LookupError:
        raise InputError(f"{label}: unknown text encoding {name!r} (e.g. utf-8, latin-1, "
                         "cp1252, utf-16)") from None
    if not getattr(info, "_is_text_encoding", True):
        raise InputError(f"{label}: {name!r} is not a text encoding")
    return info.name


def delimiter_char(text: str, label: str = "--delimiter") -> str:
    """A delimiter as one character ('' means: sniff it), from the character or its name.

    Raises:
        InputError: more than one character, a quote or a line break (names `label`).
    """
    if not text:
        return ""
    value = DELIMITER_NAMES.get(text.strip().lower(), text)
    if len(value) != 1 or value in "\"\r\n":
        raise InputError(f"{label}: {text!r} is not a delimiter; give one character or "
                         "comma, semicolon, tab or pipe")
    return value


def text_sample(location: "str | Path", encoding: str, size: int = SNIFF_BYTES) -> str:
    """The first `size` bytes decoded (a character cut at the end dropped, a BOM removed)."""
    with open_decompressed(location) as stream:
        data = stream.read(size)
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    text = decoder.decode(data, final=False)
    return text.lstrip("\ufeff")


def sniff_delimiter(sample: str) -> str:
    """The delimiter among comma, semicolon and tab that splits the header into the most
    columns and the sampled rows into the same number; comma when none splits it."""
    lines = [line for line in io.StringIO(sample, newline="").read().splitlines()[:50]
             if line.strip()]
    if len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut off by the sample's end
    best, best_score = ",", (0, 0.0)
    for delimiter in SNIFFED_DELIMITERS:
        rows = list(csv.reader(lines, delimiter=delimiter))
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        agreeing = sum(len(row) == width for row in rows) / len(rows)
        score = (1 if agreeing >= 0.8 else 0, agreeing * width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def read_text_lines(stream: BinaryIO, encoding: str) -> IO[str]:
    """A binary stream as text lines in `encoding` (newlines kept as written)."""
    return io.TextIOWrapper(cast(Any, stream), encoding=encoding, newline="")
