"""Settings: defaults, tailor.toml, environment precedence, and clear errors for bad values."""

from pathlib import Path

import pytest

from tailor.config import SETTINGS, ConfigError, example_toml, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults_need_no_services(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, env={})
    assert settings.event_store_url == f"sqlite:///{tmp_path / 'events.db'}"
    assert settings.pii_store_url.endswith("pii.db")
    assert settings.lake_root == str(tmp_path / "lake")
    assert settings.redis_url == ""
    assert settings.tracking_uri.startswith("sqlite:///")


def test_loading_settings_creates_nothing(tmp_path: Path) -> None:
    load_settings(home=tmp_path / "new", env={})
    assert not (tmp_path / "new").exists()


def test_environment_beats_toml_and_home_flag_beats_both(tmp_path: Path) -> None:
    toml = tmp_path / "tailor.toml"
    toml.write_text('home = "from-toml"\n[quality]\nmax_reject_rate = 0.01\n[ingest]\nchunk_rows = 500\n')
    env = {"TAILOR_CONFIG": str(toml), "TAILOR_QUALITY_MAX_REJECT_RATE": "0.02", "TAILOR_HOME": "from-env"}
    settings = load_settings(env=env)
    assert settings.quality_max_reject_rate == 0.02
    assert settings.ingest_chunk_rows == 500
    assert settings.home == "from-env"
    assert load_settings(home="from-flag", env=env).home == "from-flag"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TAILOR_INGEST_CHUNK_ROWS": "many"}, "ingest_chunk_rows must be int"),
        ({"TAILOR_INGEST_CHUNK_ROWS": "0"}, "ingest_chunk_rows must be a positive integer"),
        ({"TAILOR_QUALITY_MAX_REJECT_RATE": "1.5"}, "quality_max_reject_rate must be between 0 and 1"),
        ({"TAILOR_QUALITY_FRESHNESS_BLOCKING": "maybe"}, "quality_freshness_blocking must be bool"),
        ({"TAILOR_DATABASE_URL": "mysql://x"}, "database_url must start with"),
        ({"TAILOR_CONFIG": "/nonexistent/tailor.toml"}, "no such file"),
        ({"TAILOR_SERVING_SWITCH_INTERVAL_MS": "0"}, "serving_switch_interval_ms must be above 0"),
        ({"TAILOR_SERVING_SWITCH_INTERVAL_MS": "5000"}, "at most 1000"),
        ({"TAILOR_SERVING_SWITCH_INTERVAL_MS": "fast"}, "serving_switch_interval_ms must be float"),
    ],
)
def test_bad_environment_values_name_the_key(env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[quality]\nmax_reject_rat = 0.1\n", "unknown key '\\[quality\\] max_reject_rat'"),
        ("home = [1, 2]\n", "home must be str"),
        ("this is not toml", "not valid TOML"),
        ("[ingest]\nchunk_rows = 1.5\n", "ingest_chunk_rows must be int"),
    ],
)
def test_bad_toml_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tailor.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(env={"TAILOR_CONFIG": str(path)})


def test_non_utf8_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tailor.toml"
    path.write_bytes(b'home = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(env={"TAILOR_CONFIG": str(path)})


def test_example_file_lists_every_key_with_its_default() -> None:
    committed = (REPO / "tailor.toml.example").read_text()
    assert committed == example_toml(), "regenerate with: tailor config --example > tailor.toml.example"
    for setting in SETTINGS:
        assert f"\n{setting.key} = " in committed
        assert setting.env in committed


def test_example_file_loads_back_to_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "tailor.toml"
    path.write_text(example_toml())
    loaded = load_settings(env={"TAILOR_CONFIG": str(path)})
    assert dict(loaded.values) == {setting.name: setting.default for setting in SETTINGS}


def test_replace_validates_like_any_source(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, env={})
    assert settings.replace(ingest_chunk_rows="10").ingest_chunk_rows == 10
    with pytest.raises(ConfigError):
        settings.replace(no_such_key=1)
