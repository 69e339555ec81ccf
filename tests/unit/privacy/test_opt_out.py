"""Opt-out and opt-in on the exclusion list: idempotent, opt-in never brings back a deleted
customer, every reader sees a change at once, and the audit log names nobody.

Runs `tailor.privacy.opt_out` and the `tailor opt-out | opt-in` commands on a fresh home;
the list is read back through the readers training, campaigns and serving use.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import threading

import pytest
from typer.testing import CliRunner

from tailor.cli import app as cli_app
from tailor.config import Settings, load_settings
from tailor.errors import InputError
from tailor.events.tombstones import add_tombstone, load_tombstone_key, tombstone_of
from tailor.privacy.excluded_customers import (
    LOCK_FILE,
    drop_customer,
    exclusion_reasons,
    exclusions_path,
    writers_lock,
)
from tailor.privacy.opt_out import opt_in, opt_out, opt_out_status
from tailor.privacy.opt_out_audit import audit_entries, audit_path, customer_ref
from tailor.privacy.opt_out_list import OptOutList
from tailor.serving.exclusions import ExclusionList


@pytest.fixture
def settings(tailor_home: Path) -> Settings:
    return load_settings(home=tailor_home, env={})


def _rows(settings: Settings) -> list[list[str]]:
    with exclusions_path(settings).open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))[1:]


def test_opt_out_puts_the_customer_on_the_list_once(settings: Settings) -> None:
    first = opt_out(settings, "cust-7")
    second = opt_out(settings, " cust-7 ")  # spaces dropped, as the import drops them
    assert (first.status, first.changed) == ("opted_out", True)
    assert (second.status, second.changed) == ("opted_out", False)
    assert exclusion_reasons(settings) == {"cust-7": "opted_out"}
    assert [row[:2] for row in _rows(settings)] == [["cust-7", "opted_out"]]


def test_opt_in_removes_the_opt_out_and_is_idempotent(settings: Settings) -> None:
    opt_out(settings, "cust-7")
    opt_out(settings, "cust-8")
    assert opt_in(settings, "cust-7").changed is True
    again = opt_in(settings, "cust-7")
    assert (again.status, again.changed) == ("opted_in", False)
    assert exclusion_reasons(settings) == {"cust-8": "opted_out"}
    assert opt_out_status(settings, "cust-7") == "opted_in"


def test_opt_in_keeps_a_deleted_customer_deleted(settings: Settings) -> None:
    path = exclusions_path(settings)
    opt_out(settings, "cust-9")
    with path.open("a", newline="", encoding="utf-8") as handle:  # as `tailor forget` writes
        csv.writer(handle).writerow(["cust-9", "deleted", "2026-03-01T00:00:00+00:00"])
    change = opt_in(settings, "cust-9")
    assert (change.status, change.changed) == ("deleted", True)  # its opted_out row went
    assert [row[:2] for row in _rows(settings)] == [["cust-9", "deleted"]]
    assert opt_out(settings, "cust-9").changed is False  # deleted: nothing to add


def test_a_forgotten_customer_is_deleted_and_never_written_back(settings: Settings) -> None:
    opt_out(settings, "cust-9")
    add_tombstone(settings.home_path,  # `tailor forget`: the tombstone, then drop_customer
                  tombstone_of(load_tombstone_key(settings.home_path), "cust-9"))
    assert drop_customer(settings, "cust-9") == 1
    again = opt_out(settings, "cust-9")
    back = opt_in(settings, "cust-9")
    assert (again.status, again.changed) == ("deleted", False)
    assert (back.status, back.changed) == ("deleted", False)
    assert opt_out_status(settings, "cust-9") == "deleted"
    assert _rows(settings) == []  # the raw id stays off the list
    assert "cust-9" in ExclusionList(settings)  # excluded by the tombstone
    result = CliRunner().invoke(cli_app, ["opt-out", "cust-9", "--json",
                                          "--home", str(settings.home_path)])
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == "deleted"
    assert _rows(settings) == []


def test_drop_customer_waits_for_the_writers_lock_so_no_opt_out_is_lost(
        settings: Settings) -> None:
    opt_out(settings, "cust-1")
    path = exclusions_path(settings)
    with writers_lock(path.parent / LOCK_FILE):  # an opt-out is between its read and write
        dropping = threading.Thread(target=drop_customer, args=(settings, "cust-1"))
        dropping.start()
        dropping.join(timeout=0.5)
        assert dropping.is_alive(), "drop_customer rewrote the list without the writers' lock"
        with path.open("a", encoding="utf-8") as handle:  # what that opt-out appends
            handle.write("cust-2,opted_out,2026-12-03T00:00:00+00:00\n")
    dropping.join(timeout=30)
    assert not dropping.is_alive()
    assert exclusion_reasons(settings) == {"cust-2": "opted_out"}


def test_a_change_moves_the_modification_time_so_watchers_see_it_at_once(
        settings: Settings) -> None:
    serving = ExclusionList(settings, recheck_seconds=0)
    collector = OptOutList(settings, recheck_seconds=0)
    path = exclusions_path(settings)
    for round_number in range(20):  # many changes inside one clock tick of the file system
        before = path.stat().st_mtime_ns
        opt_out(settings, f"cust-{round_number}")
        assert path.stat().st_mtime_ns > before
        assert f"cust-{round_number}" in serving
        assert f"cust-{round_number}" in collector.blocked_ids()
        opt_in(settings, f"cust-{round_number}")
        assert f"cust-{round_number}" not in serving
        assert f"cust-{round_number}" not in collector.blocked_ids()


@pytest.mark.parametrize("bad, problem", [("", "empty"), ("   ", "empty"),
                                          ("a\x00b", "NUL"),
                                          ("x" * 513, "longer than 512")])
def test_a_malformed_id_is_refused_naming_the_field(settings: Settings, bad: str,
                                                    problem: str) -> None:
    with pytest.raises(InputError, match=f"customer_id: .*{problem}"):
        opt_out(settings, bad)
    assert exclusion_reasons(settings) == {}


@pytest.mark.parametrize("odd", ["tab\there", "esc\x1bape", "new\nline", "c\rr", "del\x7f"])
def test_an_id_with_control_characters_is_opted_out_as_it_is_stored(settings: Settings,
                                                                     odd: str) -> None:
    """The event contract stores ids with control characters (`tailor forget` takes them
    too): opt-out takes them, and serving and the collector read them back whole."""
    serving = ExclusionList(settings, recheck_seconds=0)
    collector = OptOutList(settings, recheck_seconds=0)
    assert opt_out(settings, odd).changed is True
    assert exclusion_reasons(settings) == {odd: "opted_out"}
    assert odd in serving and odd in collector.blocked_ids()
    assert opt_out_status(settings, odd) == "opted_out"
    assert opt_in(settings, odd).changed is True
    assert odd not in serving and odd not in collector.blocked_ids()


def test_an_odd_id_is_stored_literally(settings: Settings) -> None:
    odd = "o'brien,\"; DROP TABLE events; --"
    opt_out(settings, odd)
    assert exclusion_reasons(settings) == {odd: "opted_out"}
    assert opt_in(settings, odd).changed is True
    assert exclusion_reasons(settings) == {}


def test_the_audit_log_records_every_call_without_the_id(settings: Settings) -> None:
    opt_out(settings, "cust-42", source="api")
    opt_out(settings, "cust-42", source="cli")
    opt_in(settings, "anon-00ff", source="browser")
    entries = audit_entries(settings)
    assert [(e["action"], e["source"], e["changed"], e["anonymous"]) for e in entries] == [
        ("opt_out", "api", True, False), ("opt_out", "cli", False, False),
        ("opt_in", "browser", False, True)]
    assert entries[0]["customer_ref"] == customer_ref(settings, "cust-42") != "cust-42"
    text = audit_path(settings).read_text()
    assert "cust-42" not in text and "anon-00ff" not in text
    key = settings.home_path / "privacy" / "audit.key"
    assert os.stat(key).st_mode & 0o077 == 0


def test_the_commands_change_the_list_and_answer_in_json(tailor_home: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tailor_home)]
    out = runner.invoke(cli_app, ["opt-out", "cust-3", *home, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == {"customer_id": "cust-3", "action": "opt_out",
                                      "status": "opted_out", "changed": True}
    again = runner.invoke(cli_app, ["opt-out", "cust-3", *home, "--json"])
    assert json.loads(again.stdout)["changed"] is False
    back = runner.invoke(cli_app, ["opt-in", "cust-3", *home, "--json"])
    assert json.loads(back.stdout) == {"customer_id": "cust-3", "action": "opt_in",
                                       "status": "opted_in", "changed": True}
    assert exclusion_reasons(load_settings(home=tailor_home, env={})) == {}
    bad = runner.invoke(cli_app, ["opt-out", " ", *home])
    assert bad.exit_code == 2
    assert "customer_id: empty" in bad.output
