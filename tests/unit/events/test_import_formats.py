"""Importing real-world event logs: column mapping, event-type names, delimiters, encodings,
JSON Lines (Segment and RudderStack exports too), fsspec URLs, and every malformed input or
flag named in a clear error, with good rows next to bad ones kept.
Runs against a real SQLite event store in a temporary Tailor home."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tailor.cli import app
from tailor.config import Settings, load_settings
from tailor.events.ingest.job import ingest_files
from tailor.events.ingest.options import ImportFlags, ImportOptionError, check_ingest_settings
from tailor.events.schema import ContractError
from tailor.events.store import open_event_store

NOW = pd.Timestamp("2026-03-01T12:00:00Z")
T0 = "2026-02-01T10:00:00Z"


@pytest.fixture
def settings(tailor_home: Path) -> Settings:
    return load_settings(home=tailor_home, env={})


def run(settings: Settings, path: "Path | str", **flags) -> dict:
    return ingest_files(settings, path, now=NOW, progress=False,
                        flags=ImportFlags(**flags)).to_dict()


def stored(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    store = open_event_store(settings.event_store_url)
    try:
        return (store.events_after(0, 1_000).sort_values("seq", ignore_index=True),
                store.rejected_rows(limit=1_000).sort_values("row_number", ignore_index=True))
    finally:
        store.close()


def plain(frame: pd.DataFrame) -> list[list]:
    """Rows as lists, missing values (None or NaN) as None."""
    return frame.astype(object).where(frame.notna(), None).values.tolist()


def write_lines(path: Path, lines: list, gzipped: bool = False) -> Path:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    if gzipped:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- CSV: mapping, delimiters, encodings -----------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
def test_columns_named_otherwise_are_mapped_and_the_delimiter_sniffed(
        settings: Settings, tmp_path: Path, delimiter: str) -> None:
    rows = [["user_id", "event", "ts", "sku", "amount"],
            ["u1", "Purchase", T0, "p1", "9.5"], ["u2", "Order Completed", T0, "p2", "inf"],
            ["u3", "page_view", "2026-02-01 11:00:00", "", ""]]
    path = tmp_path / "events.csv"
    path.write_text("\n".join(delimiter.join(row) for row in rows) + "\n", encoding="utf-8")
    report = run(settings, path, column_map="customer_id=user_id,event_type=event,"
                 "timestamp=ts,product_id=sku,price=amount")
    assert (report["accepted"], report["rejected"]) == (2, {"malformed_row": 1})
    assert report["source"]["delimiter"] == delimiter
    assert report["mapping"]["customer_id"] == "user_id (--map)"
    assert report["event_types"]["Purchase"] == {"event_type": "purchase", "rows": 1}
    events, dead = stored(settings)
    assert plain(events[["customer_id", "event_type", "product_id", "price"]]) == [
        ["u1", "purchase", "p1", 9.5], ["u3", "page_view", None, None]]
    assert dead[["row_number", "field"]].values.tolist() == [[2, "price"]]
    assert "'inf' is not a finite number" in dead["detail"][0]
    assert report["rejected_samples"]["malformed_row"][0]["field"] == "price"


def test_a_forced_delimiter_wins_over_sniffing(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "events.txt"
    path.write_text(f"customer_id|event_type|timestamp\nc1|page_view|{T0}\n", encoding="utf-8")
    assert run(settings, path, delimiter="pipe")["accepted"] == 1


def test_latin1_imports_with_encoding_and_is_refused_whole_without(settings: Settings,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(f"customer_id;event_type;timestamp;query\nc1;search;{T0};Müller\n"
                     .encode("latin-1"))
    with pytest.raises(ValueError, match="not valid UTF-8.*--encoding"):
        run(settings, path)
    report = run(settings, path, encoding="latin-1")
    assert report["accepted"] == 1 and report["source"]["encoding"] == "iso8859-1"
    assert stored(settings)[0]["query"].tolist() == ["Müller"]


def test_a_saved_mapping_serves_and_a_flag_overrides_it_per_column(
        tailor_home: Path, tmp_path: Path) -> None:
    settings = load_settings(home=tailor_home, env={
        "TAILOR_INGEST_COLUMN_MAP": "customer_id=user_id,timestamp=ts,order_id=missing_here",
        "TAILOR_INGEST_EVENT_TYPES": "purchase=Bought", "TAILOR_INGEST_DAYFIRST": "true"})
    path = tmp_path / "events.csv"
    path.write_text("user_id,client,event_type,ts\nu1,k1,Bought,05/01/2026 10:03\n",
                    encoding="utf-8")
    report = run(settings, path, column_map="customer_id=client", event_types="")
    assert report["accepted"] == 0 and report["rejected"] == {"missing_product_id": 1}
    assert report["mapping"]["customer_id"] == "client (--map)"
    assert report["mapping"]["timestamp"] == "ts (ingest.column_map)"
    assert "order_id" not in report["mapping"]  # a saved entry for other files: skipped
    assert report["timestamps"]["forms"] == {"dayfirst": 1}
    assert json.loads(stored(settings)[1]["raw"][0])["customer_id"] == "k1"


def test_a_segment_warehouse_table_imports_by_its_own_column_names(settings: Settings,
                                                                  tmp_path: Path) -> None:
    path = tmp_path / "tracks.csv"
    path.write_text("id,anonymous_id,user_id,event,event_text,timestamp,product_id,price\n"
                    f"m1,a1,u1,order_completed,Order Completed,{T0},p1,20\n"
                    f"m2,a2,,product_viewed,Product Viewed,{T0},p2,\n", encoding="utf-8")
    report = run(settings, path)
    assert report["accepted"] == 2 and report["source"]["layout"] == "segment"
    events = stored(settings)[0]
    assert events[["event_id", "customer_id", "event_type"]].values.tolist() == [
        ["m1", "u1", "purchase"], ["m2", "a2", "product_view"]]


def test_case_sensitive_event_types_take_only_the_exact_spelling(settings: Settings,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(f"customer_id,event_type,timestamp\nc1,Page_View,{T0}\nc1,page_view,{T0}\n",
                    encoding="utf-8")
    report = run(settings, path, event_types_case_sensitive=True)
    assert (report["accepted"], report["rejected"]) == (1, {"malformed_row": 1})


def test_an_ambiguous_date_is_rejected_saying_how_to_pass_the_format(
        settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(f"customer_id,event_type,timestamp\nc1,page_view,01/05/2026 10:03\n"
                    f"c1,page_view,{T0}\n", encoding="utf-8")
    report = run(settings, path)
    assert (report["accepted"], report["rejected"]) == (1, {"malformed_row": 1})
    assert "--dayfirst" in report["rejected_samples"]["malformed_row"][0]["detail"]
    again = run(settings.replace(home=str(settings.home_path / "again")), path,
                timestamp_format="%m/%d/%Y %H:%M", timezone="America/New_York")
    assert again["accepted"] == 2 and again["timestamps"]["zone_from"] == "--timezone"
    assert again["timestamps"]["format"] == "%m/%d/%Y %H:%M (--timestamp-format)"
    events = stored(settings.replace(home=str(settings.home_path / "again")))[0]
    assert pd.Timestamp("2026-01-05T15:03:00Z") in events["timestamp"].tolist()


def test_a_parquet_nan_is_refused_and_a_missing_value_is_not(settings: Settings,
                                                             tmp_path: Path) -> None:
    table = pa.table({"customer_id": ["c1", "c2", "c3"],
                      "event_type": ["purchase"] * 3, "product_id": ["p1"] * 3,
                      "timestamp": [T0] * 3, "price": pa.array([float("nan"), None, 2.5])})
    pq.write_table(table, tmp_path / "events.parquet")
    report = run(settings, tmp_path / "events.parquet")
    assert (report["accepted"], report["rejected"]) == (2, {"malformed_row": 1})
    assert "'nan' is not a finite number" in stored(settings)[1]["detail"][0]


# -- JSON Lines ----------------------------------------------------------------------------


def track(event: str, message: str, **properties) -> dict:
    return {"type": "track", "event": event, "userId": "u1", "anonymousId": "a1",
            "messageId": message, "timestamp": T0, "properties": properties,
            "context": {"ip": "10.1.2.3", "traits": {"email": "ann@example.com", "name": "Ann"}}}


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_a_segment_export_imports_with_every_line_accounted_for(
        settings: Settings, tmp_path: Path, gzipped: bool) -> None:
    lines = [
        track("Product Viewed", "m1", product_id="p1", price=12.5, color="red"),
        {"type": "identify", "userId": "u1", "traits": {"email": "ann@example.com"},
         "messageId": "m2", "timestamp": T0},
        {"type": "page", "anonymousId": "a9", "messageId": "m3", "timestamp": T0,
         "properties": {"path": "/"}},
        "",
        track("Order Completed", "m4", order_id="o1", total=30,
              products=[{"product_id": "p1", "price": 10, "quantity": 2},
                        {"sku": "p2", "price": 10, "quantity": 1}]),
        '{"type": "track", "event": "Product Added", "userId": "u1", "timestamp": "'
        + T0 + '", "properties": {"product_id": "p1", "price": Infinity}}',
        track("Product Added", "m6", product_id="p1", price="1e309"),
        '{"event": "broken", "email": "bob@example.com"',
        '["not", "an", "object"]',
        {**track("Product Added", "m7", product_id="p1"), "userId": {"id": 7}},
    ]
    name = "events.jsonl.gz" if gzipped else "events.ndjson"
    report = run(settings, write_lines(tmp_path / name, lines, gzipped))
    assert report["accepted"] == 4 and report["rejected"] == {"malformed_row": 5}
    assert report["skipped"] == {"identify": 1}
    assert report["received"] == report["accepted"] + sum(report["rejected"].values())
    events, dead = stored(settings)
    assert plain(events[["event_id", "customer_id", "event_type", "product_id", "price",
                         "quantity", "order_id"]]) == [
        ["m1", "u1", "product_view", "p1", 12.5, None, None],
        ["m3", "a9", "page_view", None, None, None, None],
        ["m4:1", "u1", "purchase", "p1", 10.0, 2.0, "o1"],
        ["m4:2", "u1", "purchase", "p2", 10.0, 1.0, "o1"]]
    assert [json.loads(text) for text in events["properties"]] == [
        {"color": "red"}, {"path": "/"}, {"total": 30}, {"total": 30}]
    assert dead[["row_number", "field"]].values.tolist() == [
        [6, "price"], [7, "price"], [8, "row"], [9, "row"], [10, "customer_id"]]
    assert "'1e309' is not a finite number" in dead["detail"][1]
    assert "not valid JSON" in dead["detail"][2] and "not an object" in dead["detail"][3]
    everything = events.to_json() + dead.to_json() + json.dumps(report)
    for private in ("ann@example.com", "bob@example.com", "Ann", "10.1.2.3"):
        assert private not in everything


def test_flat_json_lines_with_contract_names_and_a_mapping(settings: Settings,
                                                           tmp_path: Path) -> None:
    lines = [{"customer_id": "c1", "event_type": "search", "timestamp": 1769940000,
              "query": "shoes", "properties.page": 2},
             {"customer": "c2", "event_type": "page_view", "timestamp": 1769940000000}]
    report = run(settings, write_lines(tmp_path / "events.json", lines),
                 column_map="customer_id=customer_id|customer")
    assert report["accepted"] == 2
    assert report["timestamps"]["forms"] == {"epoch_milliseconds": 1, "epoch_seconds": 1}
    events = stored(settings)[0]
    assert events["customer_id"].tolist() == ["c1", "c2"]
    assert json.loads(events["properties"][0]) == {"page": 2}


def test_files_come_from_fsspec_urls(settings: Settings, tmp_path: Path) -> None:
    import fsspec

    folder = f"memory://tailor-test-{uuid.uuid4().hex}"
    with fsspec.open(f"{folder}/events.jsonl", "w") as handle:
        handle.write(json.dumps({"customer_id": "c1", "event_type": "page_view",
                                 "timestamp": T0}) + "\n")
    with fsspec.open(f"{folder}/events.csv.gz", "wb", compression="gzip") as handle:
        handle.write(f"customer_id,event_type,timestamp\nc2,page_view,{T0}\n".encode())
    assert run(settings, f"{folder}/events.jsonl")["accepted"] == 1
    assert run(settings, f"{folder}/events.csv.gz")["accepted"] == 1
    local = tmp_path / "events.csv"
    local.write_text(f"customer_id,event_type,timestamp\nc3,page_view,{T0}\n", encoding="utf-8")
    assert run(settings, f"file://{local}")["accepted"] == 1
    with pytest.raises(FileNotFoundError, match="events file not found: memory://"):
        run(settings, f"{folder}/nope.csv")
    with pytest.raises(ValueError, match="nosuch://x/events.csv: Protocol not known"):
        run(settings, "nosuch://x/events.csv")
    assert stored(settings)[0]["customer_id"].tolist() == ["c1", "c2", "c3"]


# -- bad flags and settings: exit 2 naming them, nothing read --------------------------------


@pytest.mark.parametrize(("flags", "named"), [
    (["--map", "customer_id"], "--map: 'customer_id' is not column=source"),
    (["--map", "buyer=user_id"], "--map: 'buyer' is not a contract column"),
    (["--map", "customer_id=a,customer_id=b"], "--map: customer_id is mapped twice"),
    (["--map", "customer_id=nope"], "--map customer_id=nope: "),
    (["--map", "customer_id=email"], "email is a PII column"),
    (["--event-types", "bought=Order Completed"], "--event-types: 'bought' is not an event type"),
    (["--event-types", "purchase=A,page_view=A"], "--event-types: 'A' is given two types"),
    (["--timestamp-format", "dd/mm/yyyy"], "--timestamp-format: 'dd/mm/yyyy' has no strftime"),
    (["--timestamp-format", "%d/%m/%Y %Q"], "--timestamp-format: '%d/%m/%Y %Q' is not a strftime"),
    (["--timezone", "Mars/Olympus"], "--timezone: 'Mars/Olympus' is not an IANA zone"),
    (["--delimiter", "::"], "--delimiter: '::' is not a delimiter"),
    (["--encoding", "klingon"], "--encoding: unknown text encoding 'klingon'"),
    (["--format", "xml"], "--format: 'xml' is not a format"),
])
def test_a_bad_flag_exits_2_naming_it(tailor_home: Path, tmp_path: Path, flags: list[str],
                                      named: str) -> None:
    path = tmp_path / "events.csv"
    path.write_text(f"user_id,email,event_type,timestamp\nu1,a@b.c,page_view,{T0}\n",
                    encoding="utf-8")
    result = CliRunner().invoke(app, ["ingest", str(path), *flags])
    assert result.exit_code == 2, result.output
    assert named in " ".join(result.output.split())
    assert not (tailor_home / "events.db").exists()


@pytest.mark.parametrize(("key", "value", "named"), [
    ("column_map", "customer_id", "ingest.column_map: 'customer_id' is not column=source"),
    ("event_types", "=x", "ingest.event_types"),
    ("timestamp_format", "%Y %Q", "ingest.timestamp_format"),
    ("delimiter", "ab", "ingest.delimiter"),
    ("encoding", "nope", "ingest.encoding"),
])
def test_a_bad_saved_setting_is_named(key: str, value: str, named: str, tailor_home: Path,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ImportOptionError, match=named.replace("(", r"\(")):
        check_ingest_settings({key: value})
    monkeypatch.setenv(f"TAILOR_INGEST_{key.upper()}", value)
    path = tmp_path / "events.csv"
    path.write_text(f"customer_id,event_type,timestamp\nc1,page_view,{T0}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["ingest", str(path)])
    assert result.exit_code == 2 and named in " ".join(result.output.split())


def test_a_missing_column_says_how_to_map_it(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(f"customer,kind,ts\nu1,page_view,{T0}\n", encoding="utf-8")
    with pytest.raises(ContractError, match=r"missing required column\(s\): customer_id, "
                       r"event_type, timestamp .*found: customer, kind, ts\); .*--map "
                       r"customer_id=<column>,event_type=<column>,timestamp=<column>"):
        run(settings, path)
    # user_id and event are a Segment export's names: only the time is left to name
    path.write_text(f"user_id,event,ts\nu1,page_view,{T0}\n", encoding="utf-8")
    with pytest.raises(ContractError, match=r"column\(s\): timestamp .*--map timestamp=<col"):
        run(settings, path)
    assert run(settings, path, column_map="timestamp=ts")["accepted"] == 1


def test_the_printed_report_shows_mapping_format_and_samples(tailor_home: Path,
                                                             tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(f"user_id;event;ts\nmail@example.com;Order Completed;{T0}\nu2;x;{T0}\n",
                    encoding="utf-8")
    result = CliRunner().invoke(app, ["ingest", str(path), "--map",
                                      "customer_id=user_id,event_type=event,timestamp=ts"])
    assert result.exit_code == 0, result.output
    for words in ("user_id (--map)", "';'", "ISO 8601", "missing_product_id", "malformed_row",
                  "'Order Completed'"):
        assert words in result.output, words
    assert "mail@example.com" not in result.output


def test_json_lines_without_a_required_key_reject_rows_not_the_file(settings: Settings,
                                                                    tmp_path: Path) -> None:
    lines = [{"user": user, "event_type": "page_view", "timestamp": T0} for user in ("u1", "u2")]
    lines.append({"customer_id": "c1", "event_type": "page_view", "timestamp": T0})
    report = run(settings, write_lines(tmp_path / "events.jsonl", lines))
    assert (report["accepted"], report["rejected"]) == (1, {"missing_customer_id": 2})
    report = run(settings.replace(home=str(tmp_path / "mapped")), tmp_path / "events.jsonl",
                 column_map="customer_id=user")
    assert report["accepted"] == 3  # the mapped key, else the row's own customer_id
    sampled = run(settings.replace(home=str(tmp_path / "few")),
                  write_lines(tmp_path / "few.jsonl", lines[:2]))
    assert any("no line of the first 1,000 has customer_id" in warning
               and "--map customer_id=<column>" in warning for warning in sampled["warnings"])
