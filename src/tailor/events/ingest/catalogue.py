"""The catalogue and the customers of an import: products and pseudonymous customers to the
event store, customers' PII columns to the PII store only.

Reads the products and customers files (CSV or Parquet); writes `products` and `customers`
in the event store and the PII store's rows. Rows the store cannot hold (NUL characters,
text that is not Unicode, blank ids) are left out with a warning in the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tailor.events.frames import finite_numbers
from tailor.events.ingest.files import InputFile, file_columns, require_columns
from tailor.events.ingest.readers import iter_chunks
from tailor.events.ingest.report import IngestReport, warn
from tailor.events.pii import open_pii_store, pii_columns
from tailor.events.retry import RetryPolicy, with_retries
from tailor.events.schema import CUSTOMER_COLUMNS, NUL, PRODUCT_COLUMNS
from tailor.events.store import EventStore
from tailor.events.tombstones import TombstoneSet
from tailor.events.value_limits import is_storable_text


def load_products(store: EventStore, source: InputFile, chunk_rows: int,
                  report: IngestReport, policy: RetryPolicy = RetryPolicy()) -> None:
    """Upsert the catalogue; rows without a product_id are skipped and counted in a warning.
    Upserts are idempotent, so a dropped connection is simply retried (`policy`)."""
    path = source.shown
    columns = file_columns(source)
    require_columns(path, columns, ("product_id",))
    skipped, bad_numbers = 0, {name: 0 for name in ("price", "rating", "inventory")}
    with_nul: dict[str, int] = {}
    not_unicode: dict[str, int] = {}
    for chunk in iter_chunks(source, columns, chunk_rows):
        frame = chunk.frame
        skipped += len(chunk.malformed) + int(_blank(frame["product_id"]).sum())
        for name in bad_numbers:
            if name in frame.columns:
                numbers = finite_numbers(frame[name])
                bad_numbers[name] += int((frame[name].notna() & numbers.isna()).sum())
        frame = frame[~_blank(frame["product_id"])]
        unstorable = _nul_rows(frame, PRODUCT_COLUMNS, with_nul) \
            | _not_unicode_rows(frame, not_unicode)
        rows = frame[~unstorable]
        report.products += with_retries(lambda _: store.upsert_products(rows),
                                        f"products of {path}", policy)
    if skipped:
        warn(report, f"{path}: skipped {skipped:,} product row(s) without a product_id "
                      "or with the wrong number of fields")
    _warn_nul(report, path, "product", with_nul)
    _warn_not_unicode(report, path, "product", not_unicode)
    for name, count in bad_numbers.items():
        if count:
            warn(report, f"{path}: {name}: {count:,} value(s) not a number (or not finite: "
                          "inf, nan), stored as empty")


def load_customers(store: EventStore, source: InputFile, settings: Any, chunk_rows: int,
                   report: IngestReport, policy: RetryPolicy = RetryPolicy()) -> None:
    """Upsert pseudonymous customers; PII columns go to the (encrypted) PII store only.
    Upserts are idempotent, so a dropped connection is simply retried (`policy`)."""
    path = source.shown
    columns = file_columns(source)
    require_columns(path, columns, ("customer_id",))
    private = pii_columns(columns)
    pii_store = open_pii_store(settings) if private else None
    tombstones = TombstoneSet(settings.home_path)
    skipped = forgotten = 0
    with_nul: dict[str, int] = {}
    not_unicode: dict[str, int] = {}
    try:
        for chunk in iter_chunks(source, columns, chunk_rows):
            frame = chunk.frame[~_blank(chunk.frame["customer_id"])]
            skipped += len(chunk.malformed) + len(chunk.frame) - len(frame)
            # PII columns too: the PII store encrypts UTF-8 bytes, which such text has none of.
            frame = frame[~(_nul_rows(frame, CUSTOMER_COLUMNS, with_nul)
                            | _not_unicode_rows(frame, not_unicode))]
            gone = np.asarray(tombstones.forgotten_mask(frame["customer_id"].tolist()), bool)
            forgotten += int(gone.sum())
            frame = frame[~gone] if len(frame) else frame  # nor their PII
            if pii_store is not None:
                pii_store.upsert(frame[["customer_id", *private]])
            rows = frame.drop(columns=private)
            report.customers += with_retries(lambda _: store.upsert_customers(rows),
                                             f"customers of {path}", policy)
    finally:
        if pii_store is not None:
            pii_store.close()
    if skipped:  # counts only: these lines may hold PII, so they are neither logged nor kept
        warn(report, f"{path}: skipped {skipped:,} customer row(s) without a customer_id "
                      "or with the wrong number of fields")
    if forgotten:  # counts only, as above
        warn(report, f"{path}: skipped {forgotten:,} customer row(s) of forgotten customers "
                      "(tombstoned by `tailor forget`)")
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


def _warn_not_unicode(report: IngestReport, path: str, kind: str,
                      counts: dict[str, int]) -> None:
    """One warning naming each column where rows were skipped for text that is not UTF-8."""
    if counts:
        columns = ", ".join(f"{name} ({count:,})" for name, count in counts.items())
        warn(report, f"{path}: skipped {kind} row(s) with text that is not valid UTF-8 in "
                      f"{columns}; fix the file's encoding and import it again")


def _warn_nul(report: IngestReport, path: str, kind: str, counts: dict[str, int]) -> None:
    """One warning naming each column where rows were skipped for a NUL character (counts
    only: customer rows may hold PII, so their values are neither logged nor kept)."""
    if counts:
        columns = ", ".join(f"{name} ({count:,})" for name, count in counts.items())
        warn(report, f"{path}: skipped {kind} row(s) with a NUL character in {columns}; "
                      "remove it and import the file again")


def _blank(values: pd.Series) -> pd.Series:
    """Mask of missing or whitespace-only values."""
    return values.isna() | (values.astype(str).str.strip() == "")
