"""What every chat adapter promises the delivery loop, one test body over each platform:
send() never raises, a small card is one message, a re-sent key is not shown twice, and a
failure says whether retrying can help."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from bot.chat.base import Adapter, Delivery
from bot.chat.discord import DiscordAdapter
from bot.chat.slack import SlackAdapter
from tests.chat.samples import free_port_url, run, small_card
from tests.fakes import FakeDiscord, FakeSlack


@dataclass
class Platform:
    name: str
    make: Callable[..., Adapter]  # keyword options -> a fresh adapter (a fresh process)
    channel: str
    shown: Callable[[], int]  # messages the channel shows
    reject: Callable[[], None]  # next send fails for good (unknown channel)
    break_down: Callable[[], None]  # the platform fails with 5xx for a while
    unreachable: Adapter


def _slack() -> Iterator[Platform]:
    with FakeSlack() as fake:
        yield Platform(
            "slack",
            lambda **o: SlackAdapter(fake.token, api_url=fake.api_url, backoff=0.01, **o),
            "C1",
            lambda: len(fake.messages("C1")),
            lambda: fake.fail_with("channel_not_found", route="chat.postMessage"),
            lambda: fake.server_error(500, times=20),
            SlackAdapter("xoxb-x", api_url=free_port_url()),
        )


def _discord() -> Iterator[Platform]:
    with FakeDiscord() as fake:
        yield Platform(
            "discord",
            lambda **o: DiscordAdapter(bot_token=fake.bot_token, api_url=fake.api_url, backoff=0.01, **o),
            "1000000000000000001",
            lambda: len(fake.messages.get("1000000000000000001", [])),
            lambda: fake.reject(404, 10003, "Unknown Channel"),
            lambda: fake.server_error(500, times=20),
            DiscordAdapter(bot_token="t", api_url=free_port_url()),
        )


@pytest.fixture(params=[_slack, _discord], ids=["slack", "discord"])
def platform(request) -> Iterator[Platform]:
    yield from request.param()


def test_declares_its_platform_and_limits(platform):
    adapter = platform.make()
    assert adapter.platform == platform.name
    assert adapter.limits is not None


def test_a_small_card_is_one_message(platform):
    delivery = run(platform.make().send(platform.channel, [small_card()], idempotency_key="k1"))
    assert delivery.ok and delivery.message_id
    assert platform.shown() == 1


def test_the_same_key_twice_shows_once(platform):
    first = run(platform.make().send(platform.channel, [small_card()], idempotency_key="k1"))
    second = run(platform.make().send(platform.channel, [small_card()], idempotency_key="k1"))
    assert first.ok and second.ok and first.message_id == second.message_id
    assert platform.shown() == 1


def test_a_permanent_failure_says_so(platform):
    platform.reject()
    delivery = run(platform.make().send(platform.channel, [small_card()], idempotency_key="k1"))
    assert delivery.ok is False and delivery.permanent is True and delivery.error
    assert platform.shown() == 0


def test_a_platform_that_is_down_is_a_transient_failure(platform):
    platform.break_down()
    delivery = run(platform.make(max_retries=1).send(platform.channel, [small_card()], idempotency_key="k1"))
    assert delivery.ok is False and delivery.permanent is False and "500" in delivery.error


def test_never_raises_even_with_nothing_to_talk_to(platform):
    delivery = run(platform.unreachable.send(platform.channel, [small_card()], idempotency_key="k1"))
    assert isinstance(delivery, Delivery) and delivery.ok is False and delivery.permanent is False


def test_never_raises_on_odd_cards(platform):
    from bot.cards import Card

    odd = [Card(title=""), Card(title="x", lines=["", " "], fields=[("", "")], links=[("", "")])]
    delivery = run(platform.make().send(platform.channel, odd, idempotency_key="k1"))
    assert isinstance(delivery, Delivery)
