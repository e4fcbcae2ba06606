from datetime import timedelta

import pytest

from bot.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "span"),
    [("90s", timedelta(seconds=90)), ("30m", timedelta(minutes=30)), ("6h", timedelta(hours=6)),
     ("1d", timedelta(days=1)), ("2w", timedelta(weeks=2)), ("1h30m", timedelta(minutes=90)), (" 12H ", timedelta(hours=12))],
)
def test_parse_and_format(text, span):
    assert parse_duration(text) == span
    assert parse_duration(format_duration(span)) == span


@pytest.mark.parametrize("text", ["", "soon", "6", "6x", "0h", "-1h", "1h soon"])
def test_refuses_non_durations(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
