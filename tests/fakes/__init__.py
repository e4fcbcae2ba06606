"""Fake Slack and Discord servers on loopback (Slack's Socket Mode WebSocket too), and request
signers that sign exactly as the platforms do, for tests that talk to the bot over real HTTP."""

from tests.fakes.fake_discord import FakeDiscord, discord_headers, discord_sign
from tests.fakes.fake_slack import FakeSlack, slack_headers, slack_signature
from tests.fakes.fake_slack_socket import FakeSlackSocket

__all__ = ["FakeDiscord", "FakeSlack", "FakeSlackSocket", "discord_headers", "discord_sign", "slack_headers", "slack_signature"]
