"""Each test leaves logging and the remembered secrets as it found them."""

from __future__ import annotations

import logging

import pytest

from bot import logs, secrets


@pytest.fixture(autouse=True)
def _restore_logging_and_secrets():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in logs.CHATTY}
    factory = logging.getLogRecordFactory()
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    for name, value in chatty.items():
        logging.getLogger(name).setLevel(value)
    logging.setLogRecordFactory(factory)
    secrets.forget_all()
