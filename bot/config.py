"""Settings: built-in defaults, then a TOML file, then environment variables, then flags.

The file is `--config FILE`, else `$DEFLATION_WATCH_CONFIG`, else `./deflation-watch.toml` if it
exists. Any key can be set from the environment as `DEFLATION_WATCH_` + its path in upper case
with `__` between parts (`DEFLATION_WATCH_SOURCES__LITELLM__EVERY=1h`); `DEFLATION_WATCH_DB` sets
`db`. Everything is validated once, at start-up: an unknown key, a wrong type or an unknown source
raises `ConfigError` naming the key, and the CLI prints that one line.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot import __version__
from bot.durations import parse_duration
from bot.errors import ConfigError
from bot.sources import SOURCES, sec_edgar

ENV_PREFIX = "DEFLATION_WATCH_"
DEFAULT_FILE = Path("deflation-watch.toml")
#: Environment variables with a meaning of their own, not a settings path.
_RESERVED_ENV = {"DEFLATION_WATCH_CONFIG"}


@dataclass(frozen=True, slots=True)
class SourceSettings:
    url: str
    enabled: bool = True
    every: timedelta = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class SecEdgarSettings:
    """`[sources.sec-edgar]`: company filings for the watch indicators, not a price source, so
    it has its own settings and is never part of `sources` (nor of a price poll)."""

    url: str = sec_edgar.URL  # a template: `{cik}` becomes the ten-digit, zero-padded CIK
    user_agent: str = ""  # SEC requires one naming the operator and a contact; polling refuses without
    enabled: bool = True
    every: timedelta = timedelta(days=1)
    companies: Mapping[str, int] = field(default_factory=lambda: dict(sec_edgar.COMPANIES))  # ticker = CIK, for capex
    saas_filers: Mapping[str, int] = field(default_factory=lambda: dict(sec_edgar.SAAS_FILERS))  # ticker = CIK, for reported gross margin


@dataclass(frozen=True, slots=True)
class HttpSettings:
    timeout: float = 30.0  # seconds for connect, read and write each
    deadline: float = 300.0  # seconds for a whole request, redirects and body included
    max_bytes: int = 64 * 1024 * 1024  # a body larger than this is refused, compressed or not
    user_agent: str = f"deflation-watch/{__version__} (LLM price tracker)"


@dataclass(frozen=True, slots=True)
class AlertSettings:
    threshold_pct: float = 10.0  # smallest price move (percent) that is an alert
    implausible_pct: float = 90.0  # a cut this big (or a rise by the same factor) is held pending
    group_window: timedelta = timedelta(days=3)  # the same move in other sources within this is one alert
    group_wait: timedelta = timedelta(seconds=30)  # a channel's alerts arriving within this are one message
    top_moves: int = 8  # moves listed one per line in a message; the rest are summarised
    stale_after_failures: int = 3  # consecutive failed polls that make a source stale
    stale_after: timedelta = timedelta(days=2)  # ... or this long without a good poll
    retry_after: timedelta = timedelta(seconds=30)  # first retry of a failed delivery, doubling each time
    retry_max: timedelta = timedelta(hours=1)  # the longest wait between retries
    max_attempts: int = 8  # deliveries failing this often are given up (state failed)
    in_flight: timedelta = timedelta(seconds=30)  # a send cut short (crash, timeout) may still land this long after it began


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """What `deflation-watch run` does on a timer besides polling (each source has its `every`)."""

    digest: str = "0 9 * * mon"  # crontab (minute hour day month weekday) in `timezone`; "" for no digest
    deliver_every: timedelta = timedelta(seconds=5)  # how often the outbox is checked for due messages


@dataclass(frozen=True, slots=True)
class Settings:
    db: Path = Path("deflation-watch.db")
    timezone: str = "UTC"
    admins: tuple[str, ...] = ()
    backfill: bool = True  # a new database starts from the history shipped with the package
    log_format: str = "text"  # text | json (one JSON object a line, with poll, alert and delivery ids)
    log_level: str = ""  # debug | info | warning | error; "" for the command's own (run: info, others: warning; json: info)
    tiers: Path | None = None  # capability tiers file (None: the one shipped in bot/data)
    http: HttpSettings = field(default_factory=HttpSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    sources: Mapping[str, SourceSettings] = field(default_factory=dict)
    sec_edgar: SecEdgarSettings = field(default_factory=SecEdgarSettings)
    source_file: Path | None = None  # where the settings came from, for messages

    def enabled_sources(self) -> list[str]:
        return [name for name, source in self.sources.items() if source.enabled]


def default_sources() -> dict[str, SourceSettings]:
    return {
        name: SourceSettings(url=source.url, every=parse_duration(source.every))
        for name, source in SOURCES.items()
    }


def load(config: str | Path | None = None, *, db: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings; `config` and `db` are the command-line flags, which win."""
    environ = os.environ if environ is None else environ
    path = Path(config) if config else Path(environ["DEFLATION_WATCH_CONFIG"]) if environ.get("DEFLATION_WATCH_CONFIG") else None
    if path is None and DEFAULT_FILE.is_file():
        path = DEFAULT_FILE
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    _apply_environment(raw, environ)
    if db is not None:
        raw["db"] = str(db)
    return _build(raw, path)


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        # An empty variable is unset (an env file's `NAME=` lines); '""' sets an empty string.
        if not name.startswith(ENV_PREFIX) or name in _RESERVED_ENV or not value.strip():
            continue
        path = _env_path(name[len(ENV_PREFIX):])
        target = raw
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"environment variable {name} sets a key inside {part!r}, which is not a table")
        target[path[-1]] = _env_value(value)


def _env_path(rest: str) -> list[str]:
    """`SOURCES__GENAI_PRICES__URL` -> `["sources", "genai-prices", "url"]`: source names keep
    their dashes, which environment variable names cannot hold."""
    path = [part.lower() for part in rest.split("__")]
    if len(path) > 1 and path[0] == "sources":
        path[1] = path[1].replace("_", "-")
    return path


def _env_value(text: str) -> Any:
    """Environment values are TOML literals when they parse as one (`true`, `5`, `["a"]`), else text."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _build(raw: dict[str, Any], path: Path | None) -> Settings:
    raw = dict(raw)
    sources = default_sources()
    tables = dict(_table(raw.pop("sources", {}), "sources"))
    sec = _check_sec_edgar(_dataclass(SecEdgarSettings, _table(tables.pop(sec_edgar.NAME, {}), f"sources.{sec_edgar.NAME}"), f"sources.{sec_edgar.NAME}"))
    for name, table in tables.items():
        if name not in SOURCES:
            raise ConfigError(f"sources.{name}: unknown source; known sources are {', '.join([*SOURCES, sec_edgar.NAME])}")
        sources[name] = _dataclass(SourceSettings, _table(table, f"sources.{name}"), f"sources.{name}", base=sources[name])
    http = _dataclass(HttpSettings, _table(raw.pop("http", {}), "http"), "http")
    alerts = _check_alerts(_dataclass(AlertSettings, _table(raw.pop("alerts", {}), "alerts"), "alerts"))
    schedule = _dataclass(ScheduleSettings, _table(raw.pop("schedule", {}), "schedule"), "schedule")
    settings = _dataclass(Settings, raw, "", base=Settings(http=http, alerts=alerts, schedule=schedule, sources=sources, sec_edgar=sec))
    _check_schedule(settings)
    # Read-only from here on: nothing after start-up (least of all a chat command) changes where a source is fetched from.
    return dataclasses.replace(_check_logging(settings), sources=MappingProxyType(dict(settings.sources)), source_file=path)


def _check_schedule(settings: Settings) -> None:
    """The timezone must be a real zone and the digest a crontab that fires in it."""
    from apscheduler.triggers.cron import CronTrigger  # only here: the CLI starts faster without it

    try:
        zone = ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"timezone must be an IANA zone such as \"Europe/Berlin\" or \"UTC\", got {settings.timezone!r}") from None
    if settings.schedule.digest.strip():
        try:
            CronTrigger.from_crontab(settings.schedule.digest, timezone=zone)
        except ValueError as exc:
            raise ConfigError(
                f"schedule.digest must be a crontab such as \"0 9 * * mon\" (minute hour day month weekday), "
                f"got {settings.schedule.digest!r}: {exc}"
            ) from None


LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _check_logging(settings: Settings) -> Settings:
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(f"log_format must be one of {', '.join(LOG_FORMATS)}, got {settings.log_format!r}")
    level = settings.log_level.lower()
    if level and level not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {settings.log_level!r}")
    if settings.http.deadline <= 0:
        raise ConfigError(f"http.deadline must be a positive number of seconds, got {settings.http.deadline!r}")
    return dataclasses.replace(settings, log_level=level)


def _check_alerts(alerts: AlertSettings) -> AlertSettings:
    """Ranges the types cannot say: percentages inside (0, 100), counts at least 1."""
    if not 0 < alerts.threshold_pct < 100:
        raise ConfigError(f"alerts.threshold_pct must be between 0 and 100, got {alerts.threshold_pct!r}")
    if not alerts.threshold_pct < alerts.implausible_pct < 100:
        raise ConfigError(f"alerts.implausible_pct must be above threshold_pct and below 100, got {alerts.implausible_pct!r}")
    for key in ("top_moves", "stale_after_failures", "max_attempts"):
        if getattr(alerts, key) < 1:
            raise ConfigError(f"alerts.{key} must be at least 1, got {getattr(alerts, key)!r}")
    return alerts


def _check_sec_edgar(sec: SecEdgarSettings) -> SecEdgarSettings:
    """The URL must be a template with `{cik}`; tickers are upper case, CIKs at most ten digits."""
    key = f"sources.{sec_edgar.NAME}"
    if "{cik}" not in sec.url:
        raise ConfigError(f"{key}.url must contain {{cik}} where the ten-digit CIK goes, got {sec.url!r}")
    for table in ("companies", "saas_filers"):
        for ticker, cik in getattr(sec, table).items():
            if not 0 < cik < 10**10:
                raise ConfigError(f"{key}.{table}.{ticker} must be a CIK (a positive number of at most ten digits), got {cik!r}")
    return dataclasses.replace(
        sec,
        user_agent=sec.user_agent.strip(),
        companies={t.upper(): c for t, c in sec.companies.items()},
        saas_filers={t.upper(): c for t, c in sec.saas_filers.items()},
    )


def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table, got {type(value).__name__}")
    return value


def _dataclass(cls: type, values: dict[str, Any], prefix: str, base: Any = None) -> Any:
    """Check `values` against the fields of `cls` and return `base` (or defaults) updated."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in ("sources", "sec_edgar", "http", "alerts", "schedule", "source_file")}
    converted = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            raise ConfigError(f"{name}: unknown key; expected one of {', '.join(fields)}")
        converted[key] = _convert(fields[key].type, value, name)
    if base is None:
        missing = [f for f in fields.values() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in converted]
        if missing:
            raise ConfigError(f"{prefix}.{missing[0].name}: required key is missing")
        return cls(**converted)
    return dataclasses.replace(base, **converted)


def _convert(kind: str, value: Any, name: str) -> Any:
    """Turn a TOML value into the field's type (types are strings under `from __future__`)."""
    expect = {"str": str, "bool": bool, "float": (int, float), "int": int}.get(kind)
    if expect is not None:
        if not isinstance(value, expect) or (kind != "bool" and isinstance(value, bool)):
            raise ConfigError(f"{name} must be {_article(kind)}, got {value!r}")
        return float(value) if kind == "float" else value
    if kind == "timedelta":
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            return parse_duration(value)
        except ValueError:
            raise ConfigError(f"{name} must be a duration such as \"6h\" or \"1d\", got {value!r}") from None
    if kind in ("Path", "Path | None"):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{name} must be a file path, got {value!r}")
        return Path(value)
    if kind == "Mapping[str, int]":
        if not isinstance(value, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
            raise ConfigError(f"{name} must be a table of NAME = number, like {{ MSFT = 789019 }}, got {value!r}")
        return dict(value)
    if kind == "tuple[str, ...]":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{name} must be a list of strings, got {value!r}")
        return tuple(value)
    raise AssertionError(f"no converter for {kind}")


def _article(kind: str) -> str:
    return {"str": "a string", "bool": "true or false", "float": "a number", "int": "a whole number"}[kind]
