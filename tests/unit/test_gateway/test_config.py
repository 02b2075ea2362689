import pytest

from gateway.config import ConfigError, load_settings


def test_example_config_loads_and_env_overrides_secrets(monkeypatch, tmp_path):
    from pathlib import Path

    example = Path(__file__).parents[3] / "hr-gateway.example.toml"
    monkeypatch.setenv("HGW_UPSTREAM_GZ_BUREAU__APP_SECRET", "from-env")
    monkeypatch.setenv("HGW_UPSTREAM_GZ__APP_SECRET", "for another upstream named gz")
    monkeypatch.setenv("HGW_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/x.db")
    settings = load_settings(example)
    gz = next(u for u in settings.upstreams if u.name == "gz-bureau")
    assert gz.adapter == "json-hmac" and gz.regions == ("440100",)
    assert gz.credentials["app_secret"] == "from-env"
    assert set(gz.credentials) == {"app_id", "app_secret"}
    assert settings.database_url.endswith("/x.db")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[database]\n", "url is required"),
        ("[database]\nurl='sqlite+aiosqlite:///x'\n[[upstreams]]\nname='a'\nadapter='json-hmac'\n", "missing key 'base_url'"),
        ("[database]\nurl='sqlite+aiosqlite:///x'\n[[upstreams]]\nname='a'\nadapter='b'\nbase_url='http://x'\nregions=['44']\n", "6-digit"),
        ("[database\n", "Expected"),
    ],
)
def test_bad_configs(tmp_path, monkeypatch, text, message):
    monkeypatch.delenv("HGW_DATABASE_URL", raising=False)
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings(tmp_path / "nope.toml")
