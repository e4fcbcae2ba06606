"""The project's exceptions, one tree so callers can catch at the right depth.

DeflationWatchError
├── ConfigError        a config file or environment value is wrong; the message names the key
├── SourceError        a source could not be fetched or its payload is unusable
│   ├── FetchError     transport or HTTP failure (timeout, status, size cap, redirect)
│   └── PayloadError   the payload's shape is not what the source documents
├── UnknownModelError  a model name matches nothing stored; carries the closest names
├── InputError         a value a person entered is refused (number, unit, date); nothing stored
│   └── ImportRowsError  rows of an imported file are refused; carries every line's problem
└── NotEnoughDataError too few prices, or too short a span, to fit or index a series
"""


class DeflationWatchError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(DeflationWatchError):
    pass


class SourceError(DeflationWatchError):
    pass


class FetchError(SourceError):
    pass


class PayloadError(SourceError):
    pass


class UnknownModelError(DeflationWatchError):
    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"No model named {name!r} is stored.{hint}")


class InputError(DeflationWatchError):
    """A reading, date or name a person typed is refused; the message says what to type."""


class ImportRowsError(InputError):
    def __init__(self, path: str, problems: list[tuple[int, str]]):
        self.problems = problems  # (line number, problem), in file order
        lines = "; ".join(f"line {line}: {problem}" for line, problem in problems[:20])
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{path}: nothing imported, {len(problems)} bad row(s): {lines}{more}")


class NotEnoughDataError(DeflationWatchError):
    """Raised instead of reporting a trend that a handful of prices cannot support."""
