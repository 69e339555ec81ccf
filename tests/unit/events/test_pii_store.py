"""The PII store: encrypted at rest (the raw file holds no e-mail), keys from the environment or
a 0600 key file, and the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import stat
from pathlib import Path

import pandas as pd
import pytest
from cryptography.fernet import Fernet

from tailor.events.pii import PiiKeyError, PiiStore, load_pii_key

CUSTOMERS = pd.DataFrame({"customer_id": ["c1", "c2", None],
                          "email": ["alice@example.com", "bob@example.com", "ghost@example.com"],
                          "Name": ["Alice Liddell", None, "Nobody"], "location": ["DE", "FR", "X"]})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def pii_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'private' / 'pii.db'}"
    return request.getfixturevalue("postgres_url")


def test_upsert_get_delete_count(pii_url: str) -> None:
    store = PiiStore(pii_url, Fernet.generate_key())
    assert store.upsert(CUSTOMERS) == 2  # the row without a customer_id is skipped
    assert store.count() == 2
    assert store.get("c1") == {"email": "alice@example.com", "name": "Alice Liddell"}
    assert store.get("c2") == {"email": "bob@example.com"}  # missing values are left out
    assert store.get("nobody") is None
    store.upsert(pd.DataFrame({"customer_id": ["c1"], "email": ["alice@new.example"]}))
    assert store.get("c1") == {"email": "alice@new.example"} and store.count() == 2
    assert store.delete("c1") is True and store.delete("c1") is False
    assert store.get("c1") is None and store.count() == 1
    store.close()


def test_the_raw_database_holds_no_plain_pii(tmp_path: Path) -> None:
    path = tmp_path / "pii.db"
    store = PiiStore(f"sqlite:///{path}", Fernet.generate_key())
    store.upsert(CUSTOMERS)
    store.close()
    raw = b"".join(file.read_bytes() for file in tmp_path.glob("pii.db*"))
    assert b"c1" in raw  # the pseudonymous key is there, so this is the right file
    for secret in (b"alice@example.com", b"bob@example.com", b"Alice Liddell"):
        assert secret not in raw


def test_a_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pii.db'}"
    PiiStore(url, Fernet.generate_key()).upsert(CUSTOMERS)
    with pytest.raises(PiiKeyError, match="does not decrypt"):
        PiiStore(url, Fernet.generate_key()).get("c1")
    with pytest.raises(PiiKeyError, match="not a valid PII key"):
        PiiStore(url, b"too-short")


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = load_pii_key(home, env={})
    key_file = home / "pii.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_pii_key(home, env={}) == key  # reused, not replaced
    Fernet(key)  # a usable key


def test_environment_key_wins_and_is_checked(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    assert load_pii_key(tmp_path, env={"TAILOR_PII_KEY": key.decode()}) == key
    assert not (tmp_path / "pii.key").exists()
    with pytest.raises(PiiKeyError, match="TAILOR_PII_KEY"):
        load_pii_key(tmp_path, env={"TAILOR_PII_KEY": "not-a-key"})
