"""The [mail] settings: a malformed value is a ConfigError naming the key; the keys that moved
from [alerts] say their new name; the password is never read from a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailor.config import ConfigError, load_settings


@pytest.mark.parametrize(("env", "message"), [
    ({"TAILOR_MAIL_PORT": "70000"}, "TAILOR_MAIL_PORT: mail_port must be between 0 and 65535"),
    ({"TAILOR_MAIL_PORT": "smtp"}, "mail_port must be int"),
    ({"TAILOR_MAIL_SECURITY": "ssl"}, "mail_security must be none, starttls or tls, got 'ssl'"),
    ({"TAILOR_MAIL_RECIPIENTS": "ops, data@shop.example"},
     "mail_recipients must be comma-separated e-mail addresses"),
    ({"TAILOR_MAIL_RECIPIENTS": "ops@shop.example; data@shop.example"}, "mail_recipients"),
    ({"TAILOR_MAIL_SENDER": "tailor"}, "mail_sender must be an e-mail address"),
    ({"TAILOR_MAIL_HOST": ""}, "mail_host must be a host name or address"),
    ({"TAILOR_MAIL_TIMEOUT_SECONDS": "0"}, "mail_timeout_seconds must be positive"),
    ({"TAILOR_MAIL_USER": "tailor", "TAILOR_MAIL_HOST": "smtp.shop.example"},
     "mail_security must be starttls or tls when mail_user is set"),
    ({"TAILOR_ALERTS_EMAIL_TO": "ops@shop.example"},
     "TAILOR_ALERTS_EMAIL_TO was replaced by TAILOR_MAIL_RECIPIENTS"),
    ({"TAILOR_ALERTS_SMTP_PORT": "25"}, "TAILOR_ALERTS_SMTP_PORT was replaced by TAILOR_MAIL_PORT"),
])
def test_a_malformed_mail_setting_names_the_key(env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(env=env)


def test_good_values_load(tmp_path: Path) -> None:
    settings = load_settings(env={
        "TAILOR_MAIL_RECIPIENTS": "ops@shop.example, Data Team <data@shop.example>",
        "TAILOR_MAIL_SENDER": "Tailor <tailor@shop.example>", "TAILOR_MAIL_PORT": "587",
        "TAILOR_MAIL_SECURITY": "starttls", "TAILOR_MAIL_USER": "tailor",
        "TAILOR_MAIL_HOST": "smtp.shop.example"})
    assert settings.mail_port == 587 and settings.mail_security == "starttls"


@pytest.mark.parametrize(("text", "message"), [
    ('[alerts]\nemail_to = "ops@shop.example"\n',
     r"\[alerts\] email_to was replaced by \[mail\] recipients"),
    ('[alerts]\nemail_from = "t@shop.example"\n', r"was replaced by \[mail\] sender"),
    ('[alerts]\nsmtp_host = "smtp"\n', r"\[alerts\] smtp_host was replaced by \[mail\] host"),
    ('[alerts]\nsmtp_port = 25\n', r"was replaced by \[mail\] port"),
    ('[mail]\npassword = "hunter2"\n', "put the SMTP password in the TAILOR_MAIL_PASSWORD"),
])
def test_moved_keys_in_tailor_toml_name_their_new_place(tmp_path: Path, text: str,
                                                        message: str) -> None:
    path = tmp_path / "tailor.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_settings(env={"TAILOR_CONFIG": str(path)})
    assert "hunter2" not in str(raised.value)


def test_the_password_is_not_a_setting() -> None:
    """TAILOR_MAIL_PASSWORD is read at connect time only: it never appears in the settings
    that `tailor config` prints or a worker process receives."""
    settings = load_settings(env={"TAILOR_MAIL_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(settings.values)
