"""Settings: file, environment and flags, and one clear line for every mistake."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot import config
from bot.errors import ConfigError
from bot.sources import SOURCES


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dw.toml"
    path.write_text(text)
    return path


def test_defaults_cover_every_source():
    settings = config.load(environ={})
    assert set(settings.sources) == set(SOURCES)
    assert settings.sources["litellm"].url == SOURCES["litellm"].url
    assert settings.sources["openrouter"].every == timedelta(hours=6)
    assert settings.db == Path("deflation-watch.db")


def test_file_then_environment_then_flag(tmp_path):
    path = write(tmp_path, 'db = "from-file.db"\n[sources.litellm]\nurl = "http://127.0.0.1:1/x.json"\nevery = "1h"\nenabled = false\n')
    settings = config.load(path, environ={})
    assert settings.db == Path("from-file.db")
    assert settings.sources["litellm"] == config.SourceSettings("http://127.0.0.1:1/x.json", False, timedelta(hours=1))
    assert "litellm" not in settings.enabled_sources()
    env = {"DEFLATION_WATCH_DB": "from-env.db", "DEFLATION_WATCH_SOURCES__GENAI_PRICES__EVERY": "2d"}
    settings = config.load(path, environ=env)
    assert settings.db == Path("from-env.db")
    assert settings.sources["genai-prices"].every == timedelta(days=2)
    assert config.load(path, db="flag.db", environ=env).db == Path("flag.db")


def test_config_file_found_by_environment_then_working_directory(tmp_path, monkeypatch):
    path = write(tmp_path, 'db = "env-named.db"\n')
    assert config.load(environ={"DEFLATION_WATCH_CONFIG": str(path)}).db == Path("env-named.db")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deflation-watch.toml").write_text('db = "cwd.db"\n')
    assert config.load(environ={}).db == Path("cwd.db")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('dbb = "x.db"', "dbb: unknown key"),
        ('[sources.litellm]\nurll = "x"', "sources.litellm.urll: unknown key"),
        ('[sources.nope]\nurl = "x"', "sources.nope: unknown source"),
        ('[sources.litellm]\nenabled = "yes"', "sources.litellm.enabled must be true or false"),
        ('[sources.litellm]\nevery = 5', "sources.litellm.every must be a duration"),
        ('[sources.litellm]\nevery = "soon"', "sources.litellm.every must be a duration"),
        ('[http]\ntimeout = "fast"', "http.timeout must be a number"),
        ('admins = "me"', "admins must be a list of strings"),
        ("sources = 3", "sources must be a table"),
        ("db = ", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        config.load(write(tmp_path, text), environ={})


def test_bad_environment_value_names_the_key():
    with pytest.raises(ConfigError, match="sources.litellm.enabled must be true or false"):
        config.load(environ={"DEFLATION_WATCH_SOURCES__LITELLM__ENABLED": "maybe"})


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        config.load("nowhere.toml", environ={})


def test_example_config_documents_every_key_and_loads():
    example = Path(__file__).resolve().parent.parent / "deploy" / "deflation-watch.example.toml"
    text = example.read_text()
    settings = config.load(example, environ={})
    for name in SOURCES:
        assert f"[sources.{name}]" in text
    for key in ("db", "timezone", "admins", "timeout", "max_bytes", "user_agent", "url", "enabled", "every"):
        assert f"{key} =" in text, key
    assert settings.sources["litellm"].enabled


def test_sec_edgar_has_its_own_settings_apart_from_the_price_sources(tmp_path):
    settings = config.load(environ={})
    assert "sec-edgar" not in settings.sources and "sec-edgar" not in settings.enabled_sources()
    assert settings.sec_edgar.url == "https://data.sec.gov/api/xbrl/companyfacts/CIK{cik}.json"
    assert settings.sec_edgar.user_agent == ""  # required only to poll, which refuses without it
    assert list(settings.sec_edgar.companies) == ["MSFT", "AMZN", "GOOGL", "META", "ORCL"]
    path = write(tmp_path, '[sources.sec-edgar]\nuser_agent = " Example Corp ops@example.com "\ncompanies = { msft = 789019 }\nevery = "12h"\n')
    sec = config.load(path, environ={}).sec_edgar
    assert (sec.user_agent, sec.companies, sec.every) == ("Example Corp ops@example.com", {"MSFT": 789019}, timedelta(hours=12))
    env = {"DEFLATION_WATCH_SOURCES__SEC_EDGAR__USER_AGENT": "Ops ops@example.com", "DEFLATION_WATCH_SOURCES__SEC_EDGAR__SAAS_FILERS": "{ PLTR = 1321655 }"}
    sec = config.load(environ=env).sec_edgar
    assert (sec.user_agent, sec.saas_filers) == ("Ops ops@example.com", {"PLTR": 1321655})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[sources.sec-edgar]\nurl = "https://data.sec.gov/x.json"', "sources.sec-edgar.url must contain {cik}"),
        ('[sources.sec-edgar]\ncompanies = { MSFT = "789019" }', "sources.sec-edgar.companies must be a table of NAME = number"),
        ('[sources.sec-edgar]\ncompanies = { MSFT = 0 }', "sources.sec-edgar.companies.MSFT must be a CIK"),
        ('[sources.sec-edgar]\nsaas_filers = ["PLTR"]', "sources.sec-edgar.saas_filers must be a table"),
        ('[sources.sec-edgar]\nuseragent = "x"', "sources.sec-edgar.useragent: unknown key"),
        ('[sources.nope]\nurl = "x"', "known sources are openrouter, litellm, genai-prices, llm-prices, models-dev, bundled, sec-edgar"),
    ],
)
def test_bad_sec_edgar_settings_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("{", r"\{").replace("}", r"\}")):
        config.load(write(tmp_path, text), environ={})


def test_example_config_documents_the_sec_edgar_settings():
    example = Path(__file__).resolve().parent.parent / "deploy" / "deflation-watch.example.toml"
    text = example.read_text()
    assert "[sources.sec-edgar]" in text
    for key in ("url", "user_agent", "enabled", "every", "companies", "saas_filers"):
        assert f"\n{key} =" in text.split("[sources.sec-edgar]")[1], key
    assert config.load(example, environ={}).sec_edgar == config.load(environ={}).sec_edgar
