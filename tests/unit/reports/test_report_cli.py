"""`tailor report`: the page and JSON under reports/daily/, latest.html kept on the newest
day, --json, exit 2 for a bad date or a warehouse another process holds, and a report of
zeros for a shop without data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from report_homes import EXPECTED_DAY, REPORT_DAY
from typer.testing import CliRunner

from tailor.cli import app
from tailor.config import Settings


def run(*arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["report", *arguments])
    return result.exit_code, result.stdout, result.stderr


def test_report_writes_the_page_and_json_and_prints_where(report_settings: Settings) -> None:
    home = str(report_settings.home_path)
    code, out, err = run("--date", REPORT_DAY.isoformat(), "--json", "--home", home)
    assert code == 0, err
    payload = json.loads(out)
    folder = report_settings.home_path / "reports" / "daily"
    assert payload["paths"]["html"] == str(folder / "2026-03-02.html")
    assert payload["mail"] is None
    assert {key: payload["today"][key] for key in EXPECTED_DAY} == EXPECTED_DAY
    page = (folder / "2026-03-02.html").read_text()
    assert (folder / "latest.html").read_text() == page
    assert json.loads((folder / "2026-03-02.json").read_text())["today"]["orders"] == 3
    # nothing runs and nothing is loaded: no script, no style sheet, no outside reference
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert re.findall(r'(?:src|href)="(?!#)', page) == []

    code, _, err = run("--date", "2026-03-01", "--home", home)
    assert code == 0 and "2026-03-01.html" in " ".join(err.split())
    assert (folder / "latest.html").read_text() == page  # the newest day stays latest


def test_a_bad_date_exits_2(report_settings: Settings) -> None:
    code, _, err = run("--date", "03/02/2026", "--home", str(report_settings.home_path))
    assert code == 2 and "error" in err
    code, _, err = run("--date", "2999-01-01", "--home", str(report_settings.home_path))
    assert code == 2 and "in the future" in err


def test_a_shop_without_data_gets_a_report_of_zeros(tmp_path: Path) -> None:
    code, out, err = run("--date", "2026-03-02", "--json", "--home", str(tmp_path / "new"))
    assert code == 0, err
    today = json.loads(out)["today"]
    assert (today["sessions"], today["orders"], today["conversion"], today["aov"]) \
        == (0, 0, None, None)


def test_a_warehouse_another_process_writes_exits_2_saying_so(
        report_settings: Settings) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; "
         f"connection = duckdb.connect({str(report_settings.warehouse_file)!r}); "
         "print('locked', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run("--date", REPORT_DAY.isoformat(), "--home",
                           str(report_settings.home_path))
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and "run the report again" in " ".join(err.split())
