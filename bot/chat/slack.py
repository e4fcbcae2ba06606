"""Slack: a card becomes a Block Kit message (header, sections, fields, context) with a plain
`text` fallback for notifications; its chart is uploaded to the channel with files_upload_v2.

Transport is slack_sdk's `WebClient` run in a worker thread. Its `AsyncWebClient` needs aiohttp,
which is not among the project's dependencies; the sync client needs nothing beyond the standard
library and takes the same retry handlers, so `send()` stays a coroutine that never blocks the
event loop. Rate limits (429 with Retry-After) and server errors (5xx) are retried inside the
client a bounded number of times; a wait longer than `max_wait` is handed back to the outbox as
`Delivery.retry_after` instead of holding up the delivery loop.

Idempotency: Slack has no idempotency key for chat.postMessage, so every message carries
metadata `{"event_type": "deflation_watch_delivery", "event_payload": {"key", "part"}}` and every
chart a file name derived from the key. Before posting, `send()` reads the channel's recent
history (conversations.history with include_all_metadata, needs `channels:history` /
`groups:history`) and posts only the parts not already there, so a re-send after a crash or a
timeout shows nothing twice. Without that scope the check is skipped with a warning and a
re-send may repeat a message.

Everything from data is escaped (& < >) and mrkdwn is sent `verbatim`, so `<!channel>`,
`<@U123>` or a bare `@here` in an upstream model name is shown, never pinged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.jitter import Jitter
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient

from bot.cards import Card
from bot.chat.base import Delivery
from bot.chat.render import chunk, digest, pack, table_text

log = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"
METADATA_EVENT = "deflation_watch_delivery"

#: Errors that the same request will meet again: the delivery is marked failed, not retried.
PERMANENT_ERRORS = frozenset(
    {
        "access_denied",
        "account_inactive",
        "channel_not_found",
        "ekm_access_denied",
        "enterprise_is_restricted",
        "invalid_auth",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "is_archived",
        "metadata_too_large",
        "missing_scope",
        "msg_too_long",
        "no_permission",
        "no_text",
        "not_allowed_token_type",
        "not_authed",
        "not_in_channel",
        "org_login_required",
        "restricted_action",
        "restricted_action_non_threadable_channel",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "team_access_not_granted",
        "token_expired",
        "token_revoked",
        "two_factor_setup_required",
        "user_is_restricted",
        # response_url answers
        "expired_url",
        "no_active_hooks",
        "no_service",
        "used_url",
    }
)

_SEVERITY_EMOJI = {"warning": ":warning: ", "critical": ":rotating_light: "}


def escape(text: str) -> str:
    """Slack's three control characters as entities: data never becomes a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Post:
    """One chat.postMessage: at most `Limits.max_blocks` blocks and a notification text."""

    blocks: list[dict[str, Any]]
    text: str


@dataclass(frozen=True, slots=True)
class Upload:
    """One chart, uploaded to the channel after the message that holds its card."""

    image: bytes
    filename: str
    title: str


Step = Post | Upload


class Limits:
    """Block Kit's limits (docs.slack.dev, reference/block-kit), in characters unless named."""

    max_blocks = 50  # blocks per message
    max_section_text = 3000
    max_fields = 10  # fields per section
    max_field_text = 2000
    max_header = 150
    max_context_elements = 10
    max_text = 40000  # the top-level `text`


def card_blocks(card: Card) -> list[dict[str, Any]]:
    """One card as blocks, every text within its limit; long text is split over more blocks."""
    blocks: list[dict[str, Any]] = []
    title = _SEVERITY_EMOJI.get(card.severity, "") + card.title if card.title.strip() else ""
    titles = [piece for piece in chunk(title, Limits.max_header, escape) if piece.strip()]
    if titles:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": titles[0], "emoji": True}})
        blocks += _sections(titles[1:])
    blocks += _sections(chunk("\n".join(card.lines), Limits.max_section_text, escape))
    blocks += _field_blocks(card.fields)
    if card.table:
        fence = "```"
        room = Limits.max_section_text - 2 * len(fence) - 2
        blocks += _sections(f"{fence}\n{piece}\n{fence}" for piece in chunk(table_text(card.table), room, escape))
    blocks += _sections(_link_pieces(card.links))
    footer = [_mrkdwn(piece) for piece in chunk(card.footer or "", Limits.max_section_text, escape) if piece.strip()]
    for start in range(0, len(footer), Limits.max_context_elements):
        blocks.append({"type": "context", "elements": footer[start : start + Limits.max_context_elements]})
    return blocks


def render(cards: list[Card], idempotency_key: str = "") -> list[Step]:
    """The posts and uploads that show `cards`, in order. A chart follows the message holding the
    end of its card; `idempotency_key` names the chart files so a re-send can recognise them."""
    steps: list[Step] = []
    current: list[dict[str, Any]] = []
    shown: list[Card] = []  # the cards with blocks in `current`, for the notification text

    def flush() -> None:
        while current and current[-1]["type"] == "divider":
            current.pop()
        if current:
            steps.append(Post(blocks=list(current), text=_fallback([card.title for card in shown])))
        current.clear()
        shown.clear()

    for card in cards:
        blocks = card_blocks(card)
        if current and blocks:
            blocks = [{"type": "divider"}, *blocks]
        for block in blocks:
            if len(current) == Limits.max_blocks:
                flush()
            if not current and block["type"] == "divider":
                continue
            if not shown or shown[-1] is not card:
                shown.append(card)
            current.append(block)
        if card.image:
            flush()
            steps.append(Upload(card.image, _upload_name(card.image_name, idempotency_key, len(steps)), card.title))
    flush()
    return steps


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: no auto-linking of URLs, channel names or @mentions in text that came from data
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _sections(pieces: Iterable[str]) -> list[dict[str, Any]]:
    """A section per piece of text; Slack refuses an empty one, so blank pieces are left out."""
    return [{"type": "section", "text": _mrkdwn(piece)} for piece in pieces if piece.strip()]


def _field_blocks(fields: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Fields in sections of ten; a field too long for one is shown as text in its place."""
    blocks: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []

    def flush() -> None:
        if run:
            blocks.append({"type": "section", "fields": list(run)})
            run.clear()

    for label, value in fields:
        text = "\n".join(part for part in (f"*{escape(label)}*" if label else "", escape(value)) if part)
        if not text.strip():
            continue
        if len(text) <= Limits.max_field_text:
            run.append(_mrkdwn(text))
            if len(run) == Limits.max_fields:
                flush()
            continue
        flush()
        blocks += _sections(chunk(f"{label}:\n{value}", Limits.max_section_text, escape))
    flush()
    return blocks


def _link_pieces(links: list[tuple[str, str]]) -> list[str]:
    limit = Limits.max_section_text
    pieces: list[str] = []
    for label, url in links:
        if not url.strip():
            pieces += chunk(label, limit, escape)
            continue
        safe_url = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
        link = f"<{safe_url}|{escape(label or url)}>"
        pieces += [link] if len(link) <= limit else chunk(f"{label}: {url}", limit, escape)
    return pack(pieces, limit, "  ·  ")


def _fallback(titles: list[str]) -> str:
    """The notification text: the titles of the cards in the message (the blocks carry the rest)."""
    pieces = chunk(" | ".join(title for title in titles if title), Limits.max_text - 1, escape)
    if not pieces:
        return "Deflation Watch"
    return pieces[0] + ("…" if len(pieces) > 1 else "")


def _upload_name(name: str, key: str, step: int) -> str:
    path = PurePosixPath(name or "chart.png")
    return f"{path.stem}-{digest(key, step, length=8)}{path.suffix}"


# --- retries ------------------------------------------------------------------------------------


class _SmallJitter(Jitter):
    """Up to 10 % on top of the backoff (slack_sdk's default adds up to a whole second)."""

    def recalculate(self, duration: float) -> float:
        return duration * (1 + random.random() / 10)


class _RateLimitRetry(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler reads Retry-After as whole seconds plus up to a second of jitter;
    this one waits what the header says, and declines a wait over `max_wait` so that the
    delivery goes back to the outbox with `retry_after` rather than stalling the loop."""

    def __init__(self, max_retry_count: int, max_wait: float):
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None, error: Exception | None = None
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = _retry_after(response.headers)
        return wait is None or wait <= self.max_wait

    def prepare_for_next_attempt(
        self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None, error: Exception | None = None
    ) -> None:
        state.next_attempt_requested = True
        wait = _retry_after(response.headers) if response is not None else None
        time.sleep(1.0 if wait is None else wait)
        state.increment_current_attempt()


class _ServerErrorRetry(ServerErrorRetryHandler):
    """Every 5xx, not only the 500 and 503 that slack_sdk's handler retries."""

    def _can_retry(
        self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None, error: Exception | None = None
    ) -> bool:
        return response is not None and response.status_code >= 500


def retry_handlers(max_retries: int = 2, max_wait: float = 5.0, backoff: float = 0.5) -> list[RetryHandler]:
    """429 honouring Retry-After and 5xx with exponential backoff, each at most `max_retries`
    times. Connection errors are not retried here: a request that may have reached Slack is
    retried by the outbox, whose next `send()` checks the channel first."""
    interval = BackoffRetryIntervalCalculator(backoff_factor=backoff, jitter=_SmallJitter())
    return [_RateLimitRetry(max_retries, max_wait), _ServerErrorRetry(max_retries, interval)]


def _retry_after(headers: dict[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


# --- the adapter --------------------------------------------------------------------------------


class SlackAdapter:
    """Posts cards to Slack channels by id (`C0123…`, no `slack:` prefix)."""

    platform = "slack"
    limits = Limits

    def __init__(
        self,
        token: str,
        api_url: str | None = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 2,
        max_wait: float = 5.0,
        backoff: float = 0.5,
        check_history: bool = True,
        lookback: float = 86400.0,
        history_limit: int = 200,
        clock: Callable[[], float] = time.time,
    ):
        """`timeout` and waits are in seconds; `lookback` is how far back (seconds) `send()`
        looks for an earlier attempt of the same delivery, over at most `history_limit` messages."""
        base = (api_url or SLACK_API_URL).rstrip("/") + "/"
        self.timeout = timeout
        self.check_history = check_history
        self.lookback = lookback
        self.history_limit = history_limit
        self._clock = clock
        self._handlers = retry_handlers(max_retries, max_wait, backoff)
        self.client = WebClient(token=token, base_url=base, timeout=timeout, retry_handlers=self._handlers)  # type: ignore[arg-type]
        self._delivered: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._history_unavailable: set[str] = set()

    async def send(self, channel: str, cards: list[Card], *, idempotency_key: str) -> Delivery:
        try:
            return await self._send(channel, cards, idempotency_key)
        except Exception as exc:  # send() never raises: the outbox records the outcome and retries
            delivery = failure(exc)
            log.warning("slack delivery %s to %s failed: %s", idempotency_key, channel, delivery.error)
            return delivery

    async def respond(
        self,
        response_url: str,
        cards: list[Card],
        *,
        in_channel: bool = False,
        replace_original: bool = False,
        channel: str | None = None,
    ) -> Delivery:
        """Answer a slash command through its `response_url` (ephemeral unless `in_channel`).
        A response_url cannot carry files: charts are uploaded to `channel` when it is given
        (visible to everyone there) and otherwise left out with a warning. Never raises."""
        try:
            hook = WebhookClient(response_url, timeout=self.timeout, retry_handlers=self._handlers)  # type: ignore[arg-type]
            first = True
            for step in render(cards):
                if isinstance(step, Upload):
                    if channel is None:
                        log.warning("chart %r not shown: a response_url reply has no channel to upload to", step.title)
                        continue
                    await self._upload(channel, step)
                    continue
                body = {
                    "response_type": "in_channel" if in_channel else "ephemeral",
                    "text": step.text,
                    "blocks": step.blocks,
                    "replace_original": replace_original and first,
                }
                answer = await asyncio.to_thread(hook.send_dict, body)
                if answer.status_code != 200:
                    return _hook_failure(answer.status_code, answer.body, dict(answer.headers or {}))
                first = False
            return Delivery(ok=True)
        except Exception as exc:
            delivery = failure(exc)
            log.warning("slack response_url reply failed: %s", delivery.error)
            return delivery

    async def _send(self, channel: str, cards: list[Card], key: str) -> Delivery:
        remembered = (channel, key)
        if remembered in self._delivered:
            return Delivery(ok=True, message_id=self._delivered[remembered])
        steps = render(cards, key)
        done = await self._earlier_attempt(channel, key, steps) if steps else {}
        first: str | None = None
        for index, step in enumerate(steps):
            if index in done:
                first = first or done[index]
                continue
            if isinstance(step, Post):
                answer = await asyncio.to_thread(
                    self.client.chat_postMessage,
                    channel=channel,
                    text=step.text,
                    blocks=step.blocks,
                    metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key, "part": index}},
                    link_names=False,
                    unfurl_links=False,
                    unfurl_media=False,
                )
                first = first or answer.get("ts")
            else:
                file_id = await self._upload(channel, step)
                first = first or file_id
        self._remember(remembered, first)
        return Delivery(ok=True, message_id=first)

    async def _upload(self, channel: str, step: Upload) -> str | None:
        answer = await asyncio.to_thread(
            self.client.files_upload_v2,
            channel=channel,
            file=step.image,
            filename=step.filename,
            title=step.title,
            alt_txt=step.title if len(step.title) <= 1000 else None,
        )
        return (answer.get("file") or {}).get("id")

    async def _earlier_attempt(self, channel: str, key: str, steps: list[Step]) -> dict[int, str]:
        """The parts of this delivery already in the channel, by step index -> ts."""
        if not self.check_history or channel in self._history_unavailable:
            return {}
        try:
            answer = await asyncio.to_thread(
                self.client.conversations_history,
                channel=channel,
                include_all_metadata=True,
                limit=self.history_limit,
                oldest=f"{self._clock() - self.lookback:.6f}",
            )
        except SlackApiError as exc:
            if failure(exc).permanent:
                # e.g. missing_scope, or not_in_channel for a bot posting with chat:write.public:
                # the post itself may still work, only the duplicate check cannot.
                self._history_unavailable.add(channel)
                log.warning(
                    "cannot read %s to check for earlier attempts (%s); a re-send may repeat a message",
                    channel,
                    exc.response.get("error"),
                )
                return {}
            raise
        uploads = {step.filename: index for index, step in enumerate(steps) if isinstance(step, Upload)}
        done: dict[int, str] = {}
        for message in answer.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == METADATA_EVENT and payload.get("key") == key:
                part = payload.get("part")
                if isinstance(part, int) and 0 <= part < len(steps):
                    done[part] = message.get("ts")
            for file in message.get("files") or []:
                if file.get("name") in uploads:
                    done[uploads[file["name"]]] = file.get("id")
        return done

    def _remember(self, key: tuple[str, str], message_id: str | None) -> None:
        self._delivered[key] = message_id
        while len(self._delivered) > 10_000:
            self._delivered.popitem(last=False)


def failure(exc: BaseException) -> Delivery:
    """What a failed Slack call means for the outbox: permanent, or retry (when the platform
    says, no sooner than `retry_after` seconds)."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = response.status_code
        error = response.get("error") if isinstance(response.data, dict) else None
        if status == 429:
            return Delivery(ok=False, error="rate limited", retry_after=_retry_after(response.headers or {}))
        if status >= 500:
            return Delivery(ok=False, error=f"HTTP {status} from Slack")
        if error in PERMANENT_ERRORS or status in (401, 403, 404, 410):
            return Delivery(ok=False, error=error or f"HTTP {status}", permanent=True)
        return Delivery(ok=False, error=error or f"HTTP {status}")
    if isinstance(exc, SlackRequestError):
        return Delivery(ok=False, error=str(exc))
    if isinstance(exc, TimeoutError):
        return Delivery(ok=False, error="timed out talking to Slack")
    return Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")


def _hook_failure(status: int, body: str, headers: dict[str, Any]) -> Delivery:
    error = (body or "").strip() or f"HTTP {status}"
    if status == 429:
        return Delivery(ok=False, error="rate limited", retry_after=_retry_after(headers))
    if status >= 500:
        return Delivery(ok=False, error=f"HTTP {status} from Slack")
    return Delivery(ok=False, error=error, permanent=error in PERMANENT_ERRORS or status in (403, 404, 410))
