"""The signed-identity rule (`tailor.events.identity`): which browser events may speak for a
known customer, the signature never stored, and the secret file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tailor.config import load_settings
from tailor.events.identity import (
    IdentityCheck,
    create_identity_secret,
    identity_secret_path,
    sign_customer_id,
)

SECRET = "tlr_ik_" + "ab" * 32


def _event(customer: str, signature: str | None = None, **extra) -> dict:
    properties = {"anonymous_id": "anon-browser", "page": "/p"}
    if signature is not None:
        properties["identity_signature"] = signature
    return {"event_id": "e1", "customer_id": customer, "event_type": "product_view",
            "session_id": "s-1", "properties": properties, **extra}


def test_a_valid_signature_keeps_the_customer_and_is_not_stored() -> None:
    check = IdentityCheck(required=True, env_secret=SECRET)
    [event] = check.bind([_event("c000042", sign_customer_id(SECRET, "c000042"))], "public")
    assert event["customer_id"] == "c000042"
    assert event["properties"] == {"anonymous_id": "anon-browser", "page": "/p",
                                   "identity": "verified"}


@pytest.mark.parametrize("signature", [None, "0" * 64, sign_customer_id(SECRET, "c000043"),
                                       "not hex", 42])
def test_without_a_valid_signature_the_event_is_the_browsers_anonymous_one(signature) -> None:
    check = IdentityCheck(required=True, env_secret=SECRET)
    [event] = check.bind([_event("c000042", signature)], "public")
    assert event["customer_id"] == "anon-browser"
    assert event["properties"]["identity"] == "unverified"
    assert "identity_signature" not in event["properties"]


def test_without_an_anonymous_id_the_session_names_the_anonymous_customer() -> None:
    check = IdentityCheck(required=True, env_secret=SECRET)
    first, second, other = check.bind([
        {"customer_id": "c1", "session_id": "s-1"}, {"customer_id": "c2", "session_id": "s-1"},
        {"customer_id": "c1", "session_id": "s-2"}], "public")
    assert first["customer_id"] == second["customer_id"] != other["customer_id"]
    assert first["customer_id"].startswith("anon-") and "c1" not in first["customer_id"]


def test_anonymous_ids_secret_keys_and_odd_events_pass_as_sent() -> None:
    check = IdentityCheck(required=True, env_secret=SECRET)
    anonymous = {"customer_id": "anon-x", "event_type": "page_view"}
    server = _event("c000042")
    odd = [5, {"customer_id": None}, {"customer_id": "c1", "properties": [1, 2]}]
    assert check.bind([anonymous], "public") == [anonymous]
    assert check.bind([server], "secret") == [server]
    bound = check.bind(odd, "public")
    assert bound[:2] == odd[:2] and bound[2]["properties"] == [1, 2]  # left for the contract


def test_with_the_setting_off_ids_stay_but_bad_signatures_are_marked() -> None:
    check = IdentityCheck(required=False, env_secret=SECRET)
    plain, wrong = check.bind([_event("c1"), _event("c1", "0" * 64)], "public")
    assert plain == _event("c1")
    assert wrong["customer_id"] == "c1" and wrong["properties"]["identity"] == "unverified"


def test_required_without_a_secret_makes_every_browser_id_anonymous(tmp_path: Path) -> None:
    check = IdentityCheck(required=True, secret_file=tmp_path / "missing.key")
    [event] = check.bind([_event("c1", sign_customer_id(SECRET, "c1"))], "public")
    assert event["customer_id"] == "anon-browser"


def test_a_lone_surrogate_id_is_unverified_not_a_crash() -> None:
    check = IdentityCheck(required=True, env_secret=SECRET)
    [event] = check.bind([_event("c\ud800", "0" * 64)], "public")
    assert event["customer_id"] == "anon-browser"


def test_the_secret_file_is_private_picked_up_and_never_overwritten(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", env={})
    path = identity_secret_path(settings)
    check = IdentityCheck.from_settings(settings, env={})
    assert check.secret() is None
    secret = create_identity_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and secret.startswith("tlr_ik_")
    check.secret_file_watch.refresh()  # look now, not after the once-a-second throttle
    assert check.secret() == secret
    with pytest.raises(FileExistsError, match="rotate"):
        create_identity_secret(path)
    from_env = IdentityCheck.from_settings(settings, env={"TAILOR_IDENTITY_SECRET": "x"})
    assert from_env.secret() == "x"
