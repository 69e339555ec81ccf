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
    result = CliRunner().invoke(app, ["forget", "  ", "--home", str(tmp_path)])
    assert result.exit_code == 2 and "customer_id" in result.output


def test_a_file_the_rules_cannot_clean_makes_it_exit_1_and_is_named(tmp_path: Path) -> None:
    blob = tmp_path / "reports" / "export.bin"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"\x00\x01c77\x02")
    result = CliRunner().invoke(app, ["forget", "c77", "--json", "--home", str(tmp_path)])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["left"] == [str(blob.resolve())]
