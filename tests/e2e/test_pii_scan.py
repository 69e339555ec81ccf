"""No e-mail address or name outside the PII store after a demo run: `tailor demo` on a small
shop (simulate, ingest, validate, export, warehouse, features, train all four models, serve,
monitor), then the daily report (mailed, so it waits in the outbox), the churn retention
list and an opt-out, and every file under the home is searched for every customer's e-mail
and full name as the PII store holds them (`pii_scan.py`: Parquet, SQLite and DuckDB table
by table, archives unpacked, UTF-8/16/32).

Left out of the search: `shop/`, the simulated shop's own export that the demo imports (the
shop's input, holding the PII the import splits off), and the PII store itself (encrypted:
it is searched too, and holds nothing readable).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pii_scan import Finding, scan_bytes, scan_folder, _patterns

pytestmark = pytest.mark.slow


def tailor(home: Path, *args: str, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("TAILOR_") and key != "MLFLOW_TRACKING_URI"}
    env.update({"TAILOR_HOME": str(home), "TAILOR_MAIL_RECIPIENTS": "team@shop.example",
                "TAILOR_MAIL_HOST": "127.0.0.1", "TAILOR_MAIL_PORT": "9"})  # nobody listens
    done = subprocess.run([sys.executable, "-m", "tailor.cli", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=1800, env=env)
    assert done.returncode in expect, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("pii-scan") / "home"
    tailor(home, "demo", "--customers", "300", "--products", "60", "--days", "45",
           "--seed", "5", expect=(0, 1))  # 1: a model the demo could not promote
    tailor(home, "report", "--mail", "--json", expect=(0, 3))  # 3: mail waits in the outbox
    tailor(home, "retention", "--json", expect=(0, 2))  # 2: no churn champion on this shop
    tailor(home, "opt-out", "c000001", "--json")
    return home


def personal_data(home: Path) -> set[str]:
    """Every e-mail and name the PII store holds, read back through it."""
    from tailor.config import load_settings
    from tailor.events.pii import open_pii_store
    from tailor.events.store import open_event_store

    settings = load_settings(home=home, env={})
    store = open_event_store(settings.event_store_url)
    pii = open_pii_store(settings)
    try:
        people = [pii.get(str(customer)) or {} for customer in store.customers()["customer_id"]]
    finally:
        store.close()
        pii.close()
    return {person[column] for person in people for column in ("email", "name")
            if person.get(column)}


def test_a_demo_run_keeps_every_email_and_name_in_the_pii_store_only(demo_home: Path) -> None:
    values = personal_data(demo_home)
    shop = pd.read_csv(demo_home / "shop" / "customers.csv", dtype=str)
    assert values == set(shop["email"]) | set(shop["name"])  # all of them, decrypted
    stores = {"events.db", "lake", "warehouse.duckdb", "features", "feature_repo", "mlflow.db",
              "mlartifacts", "reports", "logs", "outbox", "privacy"}
    assert stores <= {path.name for path in demo_home.iterdir()}, "a store the scan expects is missing"
    assert list((demo_home / "outbox").glob("*.eml")), "the report mail should wait in the outbox"
    findings = scan_folder(demo_home, values, skip=[demo_home / "shop"])
    assert findings == []


@pytest.mark.parametrize("form", ["parquet", "sqlite", "npz", "gzip", "utf-32"])
def test_the_scan_finds_a_value_hidden_in_each_form(tmp_path: Path, form: str) -> None:
    value = "jane.doe@example.com"
    path = tmp_path / f"file.{form}"
    if form == "parquet":
        # Compressed, without the footer's min/max statistics: not findable in the raw bytes.
        pd.DataFrame({"who": [value] * 50}).to_parquet(path, compression="gzip",
                                                       write_statistics=False)
        raw = path.read_bytes()
        assert all(value.encode(encoding) not in raw
                   for encoding in ("utf-8", "utf-16-le", "utf-32-le"))
    elif form == "sqlite":
        import sqlite3

        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE t (x TEXT)")
            connection.execute("INSERT INTO t VALUES (?)", (value,))
    elif form == "npz":
        import numpy as np

        np.savez_compressed(path, names=np.array([value]))
    elif form == "gzip":
        import gzip

        path.write_bytes(gzip.compress(json.dumps({"email": value}).encode()))
    else:
        path.write_bytes(value.encode("utf-32-le"))
    assert {finding.value for finding in scan_folder(tmp_path, {value})} == {value}
    assert scan_bytes("x", b"nothing here", _patterns({value})) == []
    assert Finding("x", value).value == value
