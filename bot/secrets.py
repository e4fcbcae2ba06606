"""Secrets (chat tokens, signing secrets, webhook URLs): read from the environment or from a
file, held as `Secret`, never shown.

A `Secret` prints as `***` (repr, str, f-strings), so one that slips into a message, a log
line or a `--json` output shows nothing; `reveal()` is the one way to the value, for the code
that sends it. Every secret read is remembered, and `redact` replaces any remembered value in
a text: the log filter (`bot.logs`) and the command line's outputs pass everything through it,
so a token inside an exception message or a URL is masked too.

`read("SLACK_BOT_TOKEN")` looks at `$SLACK_BOT_TOKEN`, then at the file named by
`$SLACK_BOT_TOKEN_FILE` (Docker and systemd credentials put secrets in files), then at a file
named in the configuration, if the caller passes one.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from bot.errors import ConfigError

#: What a secret is shown as.
MASK = "***"
#: The environment variables that hold secrets (each may also be given as NAME_FILE).
SECRET_ENV = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "DISCORD_BOT_TOKEN", "DISCORD_WEBHOOK_URL")
#: Shorter values are not redacted from text: masking every "1234" would garble the logs, and a
#: real token is far longer.
MIN_LENGTH = 8

_known: set[str] = set()


class Secret:
    """A secret value that never shows itself."""

    __slots__ = ("_value", "name")

    def __init__(self, value: str, name: str = "secret"):
        self._value = value
        self.name = name
        remember(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self) -> tuple:
        raise TypeError("a Secret is not pickled: read it again where it is needed")


def read(name: str, *, file: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Secret | None:
    """The secret `$name`, else the contents of `$name_FILE`, else of `file`; None when none
    is set. Surrounding whitespace (a file's final newline) is dropped."""
    environ = os.environ if environ is None else environ
    value = (environ.get(name) or "").strip()
    if value:
        return Secret(value, name)
    path = (environ.get(f"{name}_FILE") or "").strip() or file
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        # The error names the file, never its contents.
        raise ConfigError(f"{name}: cannot read the secret file {path}: {exc.__class__.__name__}") from None
    return Secret(value, name) if value else None


def register_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Remember every secret the environment holds (see `SECRET_ENV`), so it is redacted
    wherever it turns up; returns the names found. A file that cannot be read is skipped here:
    the code that needs the secret reports it."""
    found = []
    for name in SECRET_ENV:
        try:
            if read(name, environ=environ) is not None:
                found.append(name)
        except ConfigError:
            continue
    return found


def remember(value: str) -> None:
    """Redact `value` from now on; for a URL (a webhook), each long path part as well, since a
    message may show the token without the URL around it."""
    value = value.strip()
    if len(value) >= MIN_LENGTH:
        _known.add(value)
    if "/" in value:
        for part in value.split("?", 1)[0].split("/"):
            if len(part) >= 20:
                _known.add(part)


def redact(text: str) -> str:
    """`text` with every remembered secret replaced by `***`."""
    if not _known or not text:
        return text
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def forget_all() -> None:
    """For tests: start again with no remembered secrets."""
    _known.clear()
