"""File import: every accepted format, every kind of bad input (clear message or dead-letter
row, never a crash, never a lost good row), chunk boundaries, and re-import idempotence.
Runs against a real SQLite event store in a temporary Tailor home."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tailor.cli import app
from tailor.config import Settings, load_settings
from tailor.events.ingest.job import ingest_files
from tailor.events.pii import open_pii_store
from tailor.events.schema import ContractError
from tailor.events.store import EventStore, open_event_store

NOW = pd.Timestamp("2026-03-01T12:00:00Z")
HEADER = "event_id,customer_id,event_type,product_id,timestamp,session_id,price"


@pytest.fixture
def settings(tailor_home: Path) -> Settings:
    return load_settings(home=tailor_home, env={})


@pytest.fixture
def store(settings: Settings) -> EventStore:
    opened = open_event_store(settings.event_store_url)
    yield opened
    opened.close()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def good_line(index: int, customer: str = "c1") -> str:
    return f"e{index},{customer},product_view,p1,2026-02-01T10:{index % 60:02d}:00Z,s1,9.5"


def run(settings: Settings, path: Path, **kwargs) -> dict:
    return ingest_files(settings, path, now=NOW, progress=False, **kwargs).to_dict()


def stored_ids(store: EventStore) -> list[str]:
    return sorted(store.events_after(0, 10_000)["event_id"])


def test_csv_import_reports_exact_counts_and_keeps_every_good_row(
        settings: Settings, tmp_path: Path, store: EventStore) -> None:
    lines = [HEADER, good_line(1), good_line(2),
             "e3,c1,product_view,p1,2026-02-01T10:00:00Z",            # 5 fields, not 7
             "e4,c1,product_view,p1,2026-02-01T10:00:00Z,s1,abc",     # price is not a number
             "e5,,page_view,,2026-02-01T10:00:00Z,s1,",               # no customer
             "e6,c2,purchase,,2026-02-01T10:00:00Z,s1,3",             # purchase without product
             "e7,c2,page_view,,2036-01-01T00:00:00Z,s1,",             # future
             "e8,c2,purchase,p1,2026-02-01T10:00:00Z,s1,0",           # price 0
             good_line(9), good_line(2)]                                 # e2 again: duplicate
    report = run(settings, write(tmp_path / "events.csv", "\n".join(lines) + "\n"))
    assert (report["accepted"], report["duplicates"]) == (3, 1)
    assert report["rejected"] == {"malformed_row": 2, "missing_customer_id": 1,
                                  "missing_product_id": 1, "future_timestamp": 1,
                                  "nonpositive_price": 1}
    assert report["received"] == 10
    assert stored_ids(store) == ["e1", "e2", "e9"]
    dead = store.rejected_rows(limit=100).set_index("row_number")
    assert dead.loc[3, "raw"] == "e3,c1,product_view,p1,2026-02-01T10:00:00Z"  # verbatim line
    assert dead.loc[3, "detail"] == "row: expected 7 fields, found 5"
    assert (dead.loc[4, "reason"], dead.loc[4, "field"]) == ("malformed_row", "price")
    assert json.loads(dead.loc[4, "raw"])["price"] == "abc"
    assert dead.loc[5, "reason"] == "missing_customer_id"
    runs = store.ingest_runs()
    assert runs["accepted"].tolist() == [3] and runs["rejected"].iloc[0]["malformed_row"] == 2


def test_reimporting_the_same_file_stores_nothing_twice(settings: Settings, tmp_path: Path,
                                                       store: EventStore) -> None:
    path = write(tmp_path / "events.csv", "\n".join([HEADER] + [good_line(i) for i in range(20)]))
    assert run(settings, path)["accepted"] == 20
    again = run(settings, path)
    assert (again["accepted"], again["duplicates"]) == (0, 20)
    assert store.count_events() == 20 and len(store.ingest_runs()) == 2


def test_parquet_and_gzip_give_the_same_result_as_csv(settings: Settings, tmp_path: Path) -> None:
    frame = pd.DataFrame({"event_id": ["e1", "e2", "e3"], "customer_id": ["c1", "c2", None],
                          "event_type": ["purchase", "page_view", "page_view"],
                          "product_id": ["p1", None, None],
                          "timestamp": pd.to_datetime(["2026-02-01T10:00:00Z"] * 3, utc=True),
                          "price": [9.5, None, None], "quantity": [2, None, None]})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "events.parquet")
    csv_text = frame.assign(timestamp="2026-02-01T10:00:00Z").to_csv(index=False)
    with gzip.open(tmp_path / "events.csv.gz", "wt", encoding="utf-8") as handle:
        handle.write(csv_text)
    homes = []
    for name in ("events.parquet", "events.csv.gz"):
        home_settings = settings.replace(home=str(tmp_path / f"home-{name}"))
        report = run(home_settings, tmp_path / name)
        assert (report["accepted"], report["rejected"]) == (2, {"missing_customer_id": 1}), name
        store = open_event_store(home_settings.event_store_url)
        homes.append(store.events_after(0, 10).drop(columns=["seq", "received_at"]))
        store.close()
    pd.testing.assert_frame_equal(homes[0], homes[1])
    assert homes[0]["quantity"].tolist()[0] == 2.0


def test_a_real_shop_log_without_optional_columns(settings: Settings, tmp_path: Path,
                                                  store: EventStore) -> None:
    """Like a public retail data set: purchases only, no event ids, sessions or prices,
    mixed timestamp forms, upper-case headers and extra columns."""
    text = ("Customer_ID,Event_Type,Product_ID,Timestamp,Quantity,Country,InvoiceNo\n"
            "17850,purchase,85123A,1767261600,6,United Kingdom,536365\n"
            "17850,purchase,71053,2026-01-01T10:00:00+00:00,6,United Kingdom,536365\n"
            "13047,purchase,84406B,2026-01-01 11:30:00+01:00,8,United Kingdom,536366\n"
            "13047,purchase,84029G,2026-01-01T10:34:00Z,6,United Kingdom,536366\n")
    path = write(tmp_path / "online_retail.csv", text)
    first = run(settings, path)
    assert (first["accepted"], first["rejected"]) == (4, {})
    stored = store.events_after(0, 10)
    assert stored["event_id"].str.startswith("d-").all() and stored["event_id"].is_unique
    assert stored["timestamp"].iloc[0] == pd.Timestamp("2026-01-01T10:00:00Z")
    assert stored["session_id"].isna().all() and stored["price"].isna().all()
    assert (run(settings, path)["duplicates"], store.count_events()) == (4, 4)


def test_chunk_boundaries_keep_exact_counts_and_row_numbers(settings: Settings, tmp_path: Path,
                                                            store: EventStore) -> None:
    lines, expected_good, expected_bad = [HEADER], [], {}
    for row in range(1, 61):
        if row % 9 == 0:
            lines.append(f"e{row},c1,page_view")  # malformed: 3 fields
            expected_bad[row] = "malformed_row"
        elif row % 7 == 0:
            lines.append(f"e{row},,page_view,,2026-02-01T10:00:00Z,s1,")
            expected_bad[row] = "missing_customer_id"
        else:
            lines.append(good_line(row))
            expected_good.append(f"e{row}")
    path = write(tmp_path / "events.csv", "\n".join(lines) + "\n")
    report = run(settings.replace(ingest_chunk_rows=7), path)
    assert report["accepted"] == len(expected_good) == 46
    assert report["rejected"] == {"malformed_row": 6, "missing_customer_id": 8}
    assert stored_ids(store) == sorted(expected_good)
    dead = store.rejected_rows(limit=100)
    assert dict(zip(dead["row_number"], dead["reason"])) == expected_bad


def test_quoted_newlines_do_not_shift_row_numbers(settings: Settings, tmp_path: Path,
                                                  store: EventStore) -> None:
    text = (HEADER + ",query\n" + good_line(1) + ',"red\nshoes"\n' + "e2,c1,page_view\n"
            + "e3,c1,page_view,,2026-02-01T10:00:00Z,s1,abc,\n")
    run(settings, write(tmp_path / "events.csv", text))
    assert store.events_after(0, 10)["query"].tolist() == ["red\nshoes"]
    dead = store.rejected_rows()
    assert dict(zip(dead["row_number"], dead["field"])) == {2: "row", 3: "price"}


def test_products_first_enable_the_unknown_product_check(settings: Settings, tmp_path: Path,
                                                         store: EventStore) -> None:
    products = write(tmp_path / "products.csv",
                     "product_id,name,category,price,rating,inventory,seasonal,brand\n"
                     "p1,Shoe,shoes,19.9,4.5,3,false,acme\n"
                     ",Nameless,x,1,1,1,false,\n"
                     "p2,Hat,hats,abc,,,,\n")
    events = write(tmp_path / "events.csv", "\n".join(
        [HEADER, good_line(1), "e2,c1,product_view,p-unknown,2026-02-01T10:00:00Z,s1,"]))
    report = ingest_files(settings, events, products_path=products, now=NOW, progress=False)
    assert report.products == 2 and report.rejected == {"unknown_product": 1}
    assert any("without a product_id" in warning for warning in report.warnings)
    assert any("price: 1 value(s) not a number" in warning for warning in report.warnings)
    extra = store.products().set_index("product_id").loc["p1", "extra"]
    assert json.loads(extra) == {"brand": "acme"}


def test_customers_pii_goes_only_to_the_encrypted_pii_store(
        settings: Settings, tmp_path: Path, store: EventStore,
        caplog: pytest.LogCaptureFixture) -> None:
    customers = write(tmp_path / "customers.csv",
                      "customer_id,signup_date,location,device_type,email,name,segment\n"
                      "c1,2025-05-01,DE,mobile,alice@example.com,Alice Liddell,vip\n")
    events = write(tmp_path / "events.csv",
                   "\n".join([HEADER + ",email", good_line(1) + ",alice@example.com",
                              "e2,c1,page_view,bob@example.com",
                              "e3,c1,page_view,,2026-02-01T10:00:00Z,s1,abc,alice@example.com"]))
    with caplog.at_level(logging.DEBUG):
        report = ingest_files(settings, events, customers_path=customers, now=NOW, progress=False)
    assert report.customers == 1 and report.accepted == 1
    assert "alice@example.com" not in caplog.text and "Alice Liddell" not in caplog.text
    assert set(store.customers().columns) == {"customer_id", "signup_date", "location",
                                              "device_type", "extra"}
    assert json.loads(store.customers()["extra"].iloc[0]) == {"segment": "vip"}
    dead = store.rejected_rows()
    assert not dead["raw"].fillna("").str.contains("@example.com").any()  # withheld, not leaked
    pii = open_pii_store(settings)
    assert pii.get("c1") == {"email": "alice@example.com", "name": "Alice Liddell"}
    pii.close()
    store.close()
    for database in settings.home_path.glob("events.db*"):
        assert b"alice@example.com" not in database.read_bytes()
        assert b"Alice Liddell" not in database.read_bytes()
    assert any("dropped PII column(s) email" in warning for warning in report.warnings)


@pytest.mark.parametrize(("name", "content", "error", "message"), [
    ("events.csv", b"", ValueError, "empty file \\(0 bytes\\)"),
    ("events.csv", b"\n\n", ValueError, "empty file \\(no header line\\)"),
    ("events.xml", b"<events/>", ValueError, "accepted formats: .csv, .csv.gz, .tsv"),
    ("events.json", b'[{"customer_id": "c1"}]', ValueError, "a JSON array, not JSON Lines"),
    ("events.csv", b"customer_id,event_type,ts\nc1,page_view,1\n", ContractError,
     "missing required column\\(s\\): timestamp"),
    ("events.parquet", b"not parquet at all", ValueError, "not a readable Parquet file"),
])
def test_whole_file_problems_are_clear_errors_and_write_nothing(
        settings: Settings, tmp_path: Path, name: str, content: bytes, error: type,
        message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=message) as raised:
        run(settings, path)
    assert str(path) in str(raised.value)
    assert not settings.home_path.exists()  # nothing was opened, let alone written


def test_missing_file_and_directory(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="events file not found"):
        run(settings, tmp_path / "nope.csv")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        run(settings, tmp_path / "folder.csv")
    good = write(tmp_path / "events.csv", HEADER + "\n" + good_line(1))
    with pytest.raises(FileNotFoundError, match="products file not found"):
        ingest_files(settings, good, products_path=tmp_path / "missing.csv", progress=False)


def test_non_utf8_file_is_rejected_whole_with_offset_and_line(settings: Settings,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    content = ((HEADER + "\n" + good_line(1) + "\n").encode()
               + "e2,c1,page_view,,2026-02-01T10:00:00Z,Müller,\n".encode("latin-1"))
    path.write_bytes(content)
    with pytest.raises(ValueError) as raised:
        run(settings, path)
    message = str(raised.value)
    offset = content.index(b"\xfc")
    assert f"byte offset {offset}" in message and "(line 3)" in message and "0xfc" in message
    assert "nothing from it was imported" in message and str(path) in message
    assert not settings.home_path.exists()


def test_header_only_file_imports_nothing_and_says_so(settings: Settings, tmp_path: Path) -> None:
    report = ingest_files(settings, write(tmp_path / "events.csv", HEADER + "\n"), now=NOW,
                          progress=False)
    assert report.to_dict()["accepted"] == 0 and report.received == 0
    assert any("no data rows" in warning for warning in report.warnings)


def test_an_unterminated_quote_cannot_swallow_rows_unseen(settings: Settings, tmp_path: Path,
                                                          store: EventStore) -> None:
    header = "event_id,customer_id,event_type,product_id,timestamp,price,session_id"
    lines = [header, "e1,c1,page_view,,2026-02-01T10:00:00Z,,s1",
             'e2,c1,page_view,,2026-02-01T10:00:00Z,,"open', "e3,c1,page_view,,1767261600,,s1",
             "e4,c1,page_view,,1767261600,,s1"]
    report = run(settings, write(tmp_path / "events.csv", "\n".join(lines) + "\n"))
    assert report["accepted"] == 1 and report["rejected"] == {"malformed_row": 1}
    dead = store.rejected_rows()
    assert dead["field"].tolist() == ["session_id"] and "unterminated quote" in dead["detail"][0]
    assert "e3,c1" in json.loads(dead["raw"][0])["session_id"]  # the swallowed lines are kept


def test_a_parse_failure_mid_file_keeps_the_rows_before_it(settings: Settings, tmp_path: Path,
                                                           store: EventStore,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # One record will not fit in a block of 256 bytes.
    monkeypatch.setattr("tailor.events.ingest.readers.CSV_BLOCK_BYTES", 256)
    lines = [HEADER] + [good_line(i) for i in range(1, 41)]
    lines.append(f'e99,c1,search,,2026-02-01T10:00:00Z,"{"x" * 600}",')
    with pytest.raises(ValueError, match="cannot parse the CSV past this point") as raised:
        run(settings.replace(ingest_chunk_rows=5), write(tmp_path / "events.csv", "\n".join(lines)))
    assert "events.csv" in str(raised.value)
    kept = store.count_events()
    assert kept >= 20 and stored_ids(store) == sorted(f"e{i}" for i in range(1, kept + 1))
    assert store.ingest_runs()["accepted"].tolist() == [kept]  # the partial run is on record


def test_cli_json_is_exactly_the_contract(tailor_home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "\n".join([HEADER, good_line(1), "e2,c1,page_view"]))
    result = CliRunner().invoke(app, ["ingest", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {k: payload[k] for k in ("accepted", "duplicates", "rejected")} == {
        "accepted": 1, "duplicates": 0, "rejected": {"malformed_row": 1}}
    assert list(payload)[:3] == ["accepted", "duplicates", "rejected"]


def test_cli_exits_2_naming_the_missing_column(tailor_home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "customer_id,event_type\nc1,page_view\n")
    result = CliRunner().invoke(app, ["ingest", str(path)])
    assert result.exit_code == 2
    assert "timestamp" in result.output and "missing required column" in result.output


# -- the reader process (files of more than one chunk) ----------------------------------------


def faulty_lines(rows: int) -> list[str]:
    """A CSV with an email column and a fault of each kind the contract rejects, plus repeats."""
    lines = [HEADER + ",email"]
    for row in range(1, rows + 1):
        line = good_line(row, customer=f"c{row % 4}") + ",x@example.com"
        if row % 11 == 0:
            line = f"e{row},c1,page_view"  # malformed: too few fields
        elif row % 13 == 0:
            line = line.replace(f"c{row % 4},", ",", 1)  # missing customer
        elif row % 17 == 0:
            line = line.replace("2026-02-01", "2027-02-01")  # future
        elif row % 19 == 0:
            line = line.replace(",9.5,", ",-2,")  # price not above 0
        elif row % 23 == 0:
            line = good_line(row - 1, customer=f"c{(row - 1) % 4}") + ",x@example.com"  # repeat
        lines.append(line)
    return lines


def stored_rows(store: EventStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stored events and dead letters, without what differs between two runs (seq, times)."""
    events = store.events_after(0, 10_000).drop(columns=["seq", "received_at"])
    dead = store.rejected_rows(limit=10_000)[["row_number", "reason", "field", "detail", "raw"]]
    return (events.sort_values("event_id", ignore_index=True),
            dead.sort_values("row_number", ignore_index=True))


def test_the_reader_process_stores_what_one_process_stores(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tailor.events.ingest.job as job
    import tailor.events.ingest.reader_process as reader_process

    started: list[object] = []

    class CountedReader(reader_process.ReaderProcess):
        def __init__(self, plan: reader_process.ReadPlan) -> None:
            started.append(plan)
            super().__init__(plan)

    monkeypatch.setattr(job, "ReaderProcess", CountedReader)
    path = write(tmp_path / "events.csv", "\n".join(faulty_lines(200)) + "\n")
    results = []
    for chunk_rows, home in ((1_000, "one"), (12, "piped")):  # line 11 is malformed
        run_settings = load_settings(home=tmp_path / home, env={}).replace(
            ingest_chunk_rows=chunk_rows)
        report = ingest_files(run_settings, path, now=NOW, progress=False)
        opened = open_event_store(run_settings.event_store_url)
        results.append((report, *stored_rows(opened)))
        opened.close()
    assert len(started) == 1  # the 12-row chunks went through the reader process, once
    (single, single_events, single_dead), (piped, piped_events, piped_dead) = results
    same_run = {"batch_id": "", "seconds": 0, "store": ""}
    assert piped.to_dict() | same_run == single.to_dict() | same_run
    assert piped.duplicates > 0 and set(piped.rejected) == {
        "malformed_row", "missing_customer_id", "future_timestamp", "nonpositive_price"}
    assert any("dropped PII column(s) email" in warning for warning in piped.warnings)
    pd.testing.assert_frame_equal(piped_events, single_events)
    pd.testing.assert_frame_equal(piped_dead, single_dead)
    assert not piped_dead["raw"].fillna("").str.contains("@example.com").any()


def test_a_reader_process_that_dies_is_reported_and_the_chunks_before_it_kept(
        settings: Settings, tmp_path: Path, store: EventStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing
    import os

    import tailor.events.ingest.reader_process as reader_process

    validate_chunk = reader_process.validate_chunk

    def dies_on_the_third_chunk(chunk, **kwargs):  # runs in the (forked) reader process
        if chunk.row_numbers[0] == 21:
            os._exit(3)
        return validate_chunk(chunk, **kwargs)

    monkeypatch.setattr(reader_process, "validate_chunk", dies_on_the_third_chunk)
    path = write(tmp_path / "events.csv", "\n".join([HEADER] + [good_line(i) for i in
                                                                range(1, 31)]) + "\n")
    with pytest.raises(RuntimeError, match=r"reader process stopped unexpectedly \(exit code 3\)"):
        run(settings.replace(ingest_chunk_rows=10), path)
    assert stored_ids(store) == sorted(f"e{i}" for i in range(1, 21))
    assert store.ingest_runs()["accepted"].tolist() == [20]
    assert multiprocessing.active_children() == []


@pytest.mark.timeout(120)  # the bug this guards against was a hang
def test_an_import_that_stops_early_stops_its_reader_even_when_sigterm_is_handled(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer fails while the reader waits on a full pipe: `close` must end the reader
    although this process (whose handlers a forked reader inherits) ignores SIGTERM, as a
    scheduler that outlives a first SIGTERM does."""
    import signal

    import tailor.events.ingest.job as job

    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        writes = []

        def failing_write(*args, **kwargs):
            writes.append(1)
            raise RuntimeError("store went away")

        monkeypatch.setattr(job, "write_chunk", failing_write)
        path = write(tmp_path / "events.csv",
                     "\n".join([HEADER] + [good_line(row, customer=f"c{row % 4}")
                                           for row in range(2_000)]) + "\n")
        run_settings = load_settings(home=tmp_path / "home", env={}).replace(ingest_chunk_rows=12)
        with pytest.raises(RuntimeError, match="store went away"):
            ingest_files(run_settings, path, now=NOW, progress=False)
        assert writes == [1]
    finally:
        signal.signal(signal.SIGTERM, previous)
