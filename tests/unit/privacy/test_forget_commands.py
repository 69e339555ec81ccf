"""`tailor forget` on the command line: one JSON object, exit 2 for a bad id, the id from
standard input with `-`, and exit 1 with the file named when a file cannot be cleaned."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tailor.cli import app


def test_forget_prints_one_json_object_even_on_an_empty_home(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["forget", "cust-one", "--json", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["removed"]["tombstone"] == {"added": 1} and answer["total"] == 0
    assert answer["complete"] is True and "cust-one" not in result.stdout


def test_the_id_can_come_from_standard_input(tmp_path: Path) -> None:
    from tailor.config import load_settings
    from tailor.events.tombstones import TombstoneSet

    result = CliRunner().invoke(app, ["forget", "-", "--json", "--home", str(tmp_path)],
                                input="c-from-stdin\n")
    assert result.exit_code == 0, result.output
    assert TombstoneSet(load_settings(home=tmp_path, env={}).home_path).contains("c-from-stdin")


def test_a_bad_id_exits_2_naming_the_field(tmp_path: Path) -> None:
    for bad, problem in (("  ", "empty"), ("x" * 513, "longer than 512"), ("a\x00b", "NUL")):
        result = CliRunner().invoke(app, ["forget", "-", "--home", str(tmp_path)], input=bad)
        assert result.exit_code == 2, (bad, result.output)
        assert "customer_id: " in result.output and problem in result.output
    assert not (tmp_path / "privacy" / "tombstones.csv").exists()


def test_a_customer_whose_id_holds_control_characters_is_forgotten(tmp_path: Path) -> None:
    """The collector stores such an id (the contract refuses only a NUL), so forget must take it."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    from tailor.config import load_settings
    from tailor.events.collector.app import create_collector_app
    from tailor.events.keys import create_key, keys_file_path
    from tailor.events.store import open_event_store

    settings = load_settings(home=tmp_path, env={})
    key = create_key("secret", keys_file_path(settings), "shop")
    odd = "c\x01odd\tid\x1b[31m"
    events = [{"customer_id": customer, "event_type": "page_view",
               "timestamp": "2026-12-01T10:00:00Z"} for customer in (odd, "c-kept")]
    with TestClient(create_collector_app(settings)) as client:
        stored = client.post("/v1/events", json={"events": events}, headers={"X-Tailor-Key": key})
    assert stored.json()["accepted"] == 2
    result = CliRunner().invoke(app, ["forget", "-", "--json", "--home", str(tmp_path)],
                                input=odd)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["removed"]["event_store"]["events"] == 1
    store = open_event_store(settings.event_store_url)
    try:
        assert store.events_after(0, 10)["customer_id"].tolist() == ["c-kept"]
    finally:
        store.close()


def test_a_file_the_rules_cannot_clean_makes_it_exit_1_and_is_named(tmp_path: Path) -> None:
    blob = tmp_path / "reports" / "export.bin"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"\x00\x01c77\x02")
    result = CliRunner().invoke(app, ["forget", "c77", "--json", "--home", str(tmp_path)])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["left"] == [str(blob.resolve())]
