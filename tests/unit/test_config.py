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
        ({"TAILOR_DATABASE_URL": "mysql://x"}, "database_url must be empty, postgresql://"),
        ({"TAILOR_CONFIG": "/nonexistent/tailor.toml"}, "no such file"),
        ({"TAILOR_SERVING_SWITCH_INTERVAL_MS": "0"}, "serving_switch_interval_ms must be above 0"),
        ({"TAILOR_SERVING_SWITCH_INTERVAL_MS": "5000"}, "at most 1000"),
        ({"TAILOR_SERVING_SWITCH_INTERVAL_MS": "fast"}, "serving_switch_interval_ms must be float"),
        ({"TAILOR_SERVING_TIMEOUT_MS": "inf"}, "serving_timeout_ms must be int"),
        ({"TAILOR_MODELS_CHECKOUT_BUDGET": "inf"}, "models_checkout_budget must be a finite number"),
        ({"TAILOR_MODELS_CHECKOUT_BUDGET": "nan"}, "models_checkout_budget must be a finite number"),
        ({"TAILOR_FEATURES_SNAPSHOT_HOURS": "5"}, "features_snapshot_hours must be a divisor of 24"),
        ({"TAILOR_FEATURES_PROJECT": "my-shop"}, "features_project must be letters, digits"),
        ({"TAILOR_MODELS_DIVERSITY": "random"}, "models_diversity must be none, category_cap or mmr"),
        ({"TAILOR_SERVING_HOMEPAGE_MODEL": "champ ion"}, "serving_homepage_model must be a registry"),
        ({"TAILOR_EVENTS_NAIVE_TIMEZONE": "Mars/Olympus"}, "events_naive_timezone must be an IANA"),
        ({"TAILOR_EVENTS_MIN_TIMESTAMP": "last year"}, "events_min_timestamp must be an ISO 8601"),
        ({"TAILOR_SERVING_MAX_HEADER_BYTES": "512"}, "serving_max_header_bytes must be at least 1024"),
        ({"TAILOR_QUALITY_VOLUME_MIN_RATIO": "5"}, "volume_min_ratio must be below"),
    ],
)
def test_bad_environment_values_name_the_key(env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


def test_an_error_says_where_the_value_came_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^TAILOR_SERVING_PORT: serving_port must be between 1 and 65535, got '0'$"):
        load_settings(env={"TAILOR_SERVING_PORT": "0"})
    path = tmp_path / "tailor.toml"
    path.write_text("[serving]\nthreads = -2\n")
    with pytest.raises(ConfigError, match=f"^{path}: serving_threads must be a positive integer, got -2$"):
        load_settings(env={"TAILOR_CONFIG": str(path)})


def test_values_arrive_typed_whatever_their_source(tmp_path: Path) -> None:
    path = tmp_path / "tailor.toml"
    path.write_text("[serving]\nport = 3001\nadaptive_batching = true\n")
    settings = load_settings(env={"TAILOR_CONFIG": str(path), "TAILOR_SERVING_TIMEOUT_MS": "150",
                                  "TAILOR_MODELS_CHURN_THRESHOLD": "0.8",
                                  "TAILOR_COLLECTOR_DEMO_SHOP": "yes",
                                  "TAILOR_INGEST_CHUNK_ROWS": "10_000"})
    assert (settings.serving_port, settings.serving_adaptive_batching) == (3001, True)
    assert settings.serving_timeout_ms == 150 and isinstance(settings.serving_timeout_ms, int)
    assert settings.models_churn_threshold == 0.8 and settings.collector_demo_shop is True
    assert settings.ingest_chunk_rows == 10_000
    assert load_settings(env={"TAILOR_COLLECTOR_DEMO_SHOP": ""}).collector_demo_shop is False
    for setting in SETTINGS:
        assert isinstance(getattr(settings, setting.name), setting.type), setting.name


def test_a_bool_is_not_a_number(tmp_path: Path) -> None:
    path = tmp_path / "tailor.toml"
    path.write_text("[ingest]\nchunk_rows = true\n")
    with pytest.raises(ConfigError, match="ingest_chunk_rows must be int, got True"):
        load_settings(env={"TAILOR_CONFIG": str(path)})


def test_settings_are_read_only(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, env={})
    with pytest.raises(Exception):
        settings.serving_port = 1  # type: ignore[misc]
    assert settings.serving_port == 3000


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
    with pytest.raises(ConfigError, match="^override: serving_max_k must be a positive integer"):
        settings.replace(serving_max_k=0)
    assert settings.serving_max_k == 100  # the original is untouched


def test_a_worker_rebuilds_the_same_settings_from_their_values(tmp_path: Path) -> None:
    import json

    from tailor.config import Settings

    settings = load_settings(home=tmp_path, env={"TAILOR_SERVING_THREADS": "3"})
    assert Settings.from_values(json.loads(json.dumps(settings.values))) == settings
