"""Shared fixtures. `shared_data` is the read-only real data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import open_db
from tests.fakes import FakeDiscord, FakeSlack
from tests.source_server import SourceServer

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`; a test may skip without it only outside CI, where it must exist."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing under CI; the real-history tests must run")
        pytest.skip(f"{SHARED_DATA} is absent on this machine (it sits beside the checkout in CI)")
    return SHARED_DATA


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def fresh_db(tmp_path: Path):
    """A new database file with the current schema."""
    db = open_db(tmp_path / "test.db")
    yield db
    db.close()


@pytest.fixture
def fake_slack():
    """Slack's Web API on loopback, recording every call (see tests/fakes)."""
    with FakeSlack() as server:
        yield server


@pytest.fixture
def fake_discord():
    """Discord's HTTP API on loopback, recording every call (see tests/fakes)."""
    with FakeDiscord() as server:
        yield server


@pytest.fixture
def source_server():
    """A loopback HTTP server playing the upstream sources."""
    server = SourceServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's own settings or writes to the working directory."""
    for name in list(os.environ):
        if name.startswith("DEFLATION_WATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
