"""Discord: a card becomes one or more embeds, its chart an attachment shown in the embed
(`attachment://chart.png`); slash commands arrive as interactions, signed with Ed25519.

Messages go through the HTTP API v10 with a bot token (`POST /channels/{id}/messages`), or
through the webhook URL (`POST {webhook}?wait=true`) for the channel `webhook` (the address
`discord:webhook`) and, with no bot token, for every channel: the webhook decides where its
messages land, so then the channel id is not used. Every message sets `allowed_mentions:
{"parse": []}`: an `@everyone`, `@here`, role or user mention that arrives in upstream data
is shown and never pings.

Idempotency: with a bot token each message carries a nonce derived from the delivery's key and
`enforce_nonce: true`, so Discord returns the message it already made instead of a second one
when the same part is re-sent within its nonce window (a few minutes). Webhooks take no nonce,
and Discord has no way to look a message up by key later: beyond that window, and always in
webhook mode, a re-send after a crash between Discord's answer and the outbox's record can
repeat a message (so can a webhook post retried after a 5xx). Within one process the adapter
remembers what it delivered.

Rate limits: a 429 is retried after the `retry_after` Discord gives (JSON body, else the
`X-RateLimit-Reset-After` or `Retry-After` header) when that is at most `max_wait` seconds,
at most `max_retries` times; 5xx is retried with exponential backoff. Other 4xx are permanent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from nacl.signing import VerifyKey

from bot.cards import Card
from bot.chat.base import Delivery
from bot.chat.render import chunk, digest, pack, table_text
from bot.errors import ConfigError, DeflationWatchError

log = logging.getLogger(__name__)

DISCORD_API_URL = "https://discord.com/api/v10"
#: The channel that means "the DISCORD_WEBHOOK_URL's channel": subscribe `discord:webhook`.
WEBHOOK_CHANNEL = "webhook"
NO_MENTIONS: dict[str, list[str]] = {"parse": []}
EPHEMERAL = 1 << 6  # message flag: only the user who ran the command sees it

# Interaction callback types
PONG = 1
CHANNEL_MESSAGE_WITH_SOURCE = 4
DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5

_COLOURS = {"info": 0x3B82F6, "good": 0x16A34A, "warning": 0xF59E0B, "critical": 0xDC2626}


class Limits:
    """Discord's message and embed limits, in characters unless named."""

    title = 256
    description = 4096
    fields = 25  # fields per embed
    field_name = 256
    field_value = 1024
    footer = 2048
    author = 256
    total = 6000  # title + description + field names and values + footer + author, all embeds
    embeds = 10  # embeds per message
    content = 2000
    nonce = 25


# --- rendering ----------------------------------------------------------------------------------

_INLINE = re.compile(r"([\\*_~`|\[\]<])")
_LINE_START = re.compile(r"(?m)^(\s*)([#>-])")


def escape_markdown(text: str) -> str:
    """Backslash-escape Discord markdown so data shows as typed: emphasis, code, spoilers,
    masked links, mentions (`<@id>`), and headings, quotes and lists at a line's start."""
    return _LINE_START.sub(r"\1\\\2", _INLINE.sub(r"\\\1", text))


def _code(text: str) -> str:
    # Inside a code block nothing is escaped; only a run of three backticks could end it early.
    return text.replace("```", "`\u200b`\u200b`")


@dataclass(slots=True)
class Message:
    """One Discord message: up to ten embeds within 6000 characters, and its attachments."""

    embeds: list[dict[str, Any]] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, PNG)

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"embeds": self.embeds, "allowed_mentions": NO_MENTIONS}
        if self.files:
            body["attachments"] = [{"id": index, "filename": name} for index, (name, _) in enumerate(self.files)]
        return body

    @property
    def size(self) -> int:
        return sum(embed_size(embed) for embed in self.embeds)


def embed_size(embed: dict[str, Any]) -> int:
    """The characters of an embed that count toward the 6000 a message may hold."""
    size = len(embed.get("title", "")) + len(embed.get("description", ""))
    size += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    size += len(embed.get("footer", {}).get("text", "")) + len(embed.get("author", {}).get("name", ""))
    return size


def card_embeds(card: Card) -> list[dict[str, Any]]:
    """One card as embeds, each within every limit. Text too long for one embed continues in
    the next; a field too long to be a field is shown as text; nothing is cut off."""
    colour = _COLOURS.get(card.severity, _COLOURS["info"])
    titles = chunk(card.title, Limits.title, escape_markdown)
    text: list[str] = list(titles[1:])
    text += chunk("\n".join(card.lines), Limits.description, escape_markdown)
    fields: list[dict[str, Any]] = []
    for label, value in card.fields:
        if not (label.strip() or value.strip()):
            continue
        name, shown = escape_markdown(label) or "\u200b", escape_markdown(value) or "\u200b"
        if len(name) <= Limits.field_name and len(shown) <= Limits.field_value:
            fields.append({"name": name, "value": shown, "inline": len(shown) <= 40})
        else:
            text += chunk(f"{label}:\n{value}", Limits.description, escape_markdown)
    if card.table:
        room = Limits.description - 8  # the fences and their line breaks
        text += [f"```\n{piece}\n```" for piece in chunk(table_text(card.table), room, _code)]
    text += _link_pieces(card.links)
    footers = chunk(card.footer or "", Limits.footer, escape_markdown)
    text += footers[1:]  # a footer over 2048 characters goes on as text rather than being cut

    embeds: list[dict[str, Any]] = []

    def new() -> dict[str, Any]:
        embeds.append({"color": colour})  # no "type": webhooks refuse it, and "rich" is the default
        return embeds[-1]

    embed = new()
    if titles:
        embed["title"] = titles[0]
    for piece in pack((p for p in text if p.strip()), Limits.description, "\n"):
        if "description" in embed or embed_size(embed) + len(piece) > Limits.total:
            embed = new()
        embed["description"] = piece
    for item in fields:
        if len(embed.get("fields", [])) == Limits.fields or embed_size(embed) + len(item["name"]) + len(item["value"]) > Limits.total:
            embed = new()
        embed.setdefault("fields", []).append(item)
    if footers:
        if embed_size(embed) + len(footers[0]) > Limits.total:
            embed = new()
        embed["footer"] = {"text": footers[0]}
    if card.image is None:
        embeds = [e for e in embeds if embed_size(e)]
    return embeds


def render(cards: list[Card]) -> list[Message]:
    """Cards as the fewest messages the limits allow, in order; each chart rides in the
    message that holds the end of its card."""
    messages: list[Message] = [Message()]
    for card in cards:
        embeds = card_embeds(card)
        for embed in embeds:
            current = messages[-1]
            if len(current.embeds) == Limits.embeds or current.size + embed_size(embed) > Limits.total:
                messages.append(current := Message())
            current.embeds.append(embed)
        if card.image is not None and embeds:
            current = messages[-1]
            name = _unique_name(card.image_name or "chart.png", {n for n, _ in current.files})
            current.files.append((name, card.image))
            embeds[-1]["image"] = {"url": f"attachment://{name}"}
    return [m for m in messages if m.embeds]


def _unique_name(name: str, taken: set[str]) -> str:
    stem, dot, suffix = name.rpartition(".") if "." in name else (name, "", "")
    candidate, number = name, 2
    while candidate in taken:
        candidate = f"{stem}-{number}{dot}{suffix}"
        number += 1
    return candidate


def _link_pieces(links: list[tuple[str, str]]) -> list[str]:
    pieces: list[str] = []
    for label, url in links:
        if not url.strip():
            pieces += chunk(label, Limits.description, escape_markdown)
            continue
        safe_url = quote(url, safe=":/?#@!$&'*+,;=%~-._")  # keeps `(` `)` and spaces from ending the link
        link = f"[{escape_markdown(label or url)}]({safe_url})"
        pieces += [link] if len(link) <= Limits.description else chunk(f"{label}: {url}", Limits.description, escape_markdown)
    return pack(pieces, Limits.description, " · ")


def nonce(idempotency_key: str, part: int) -> str:
    """The nonce of one part of a delivery: stable, at most 25 characters."""
    return digest(idempotency_key, part, length=Limits.nonce)


# --- HTTP ---------------------------------------------------------------------------------------


class _Failed(Exception):
    def __init__(self, delivery: Delivery):
        super().__init__(delivery.error)
        self.delivery = delivery


@dataclass(frozen=True, slots=True)
class _Retry:
    max_retries: int = 3
    max_wait: float = 5.0  # seconds: a longer 429 goes back to the outbox as retry_after
    backoff: float = 0.5  # seconds before the first 5xx retry, doubling


async def _request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    retry: _Retry,
    *,
    headers: dict[str, str] | None = None,
    payload: Any = None,
    files: list[tuple[str, bytes]] | None = None,
) -> httpx.Response:
    """One API call with Discord's retry rules; raises `_Failed` carrying the Delivery."""
    for attempt in range(retry.max_retries + 1):
        if files:
            parts = [(f"files[{i}]", (name, data, "image/png")) for i, (name, data) in enumerate(files)]
            request = client.build_request(method, url, headers=headers, data={"payload_json": json.dumps(payload)}, files=parts)
        else:
            request = client.build_request(method, url, headers=headers, json=payload)
        try:
            response = await client.send(request)
        except httpx.TimeoutException:
            raise _Failed(Delivery(ok=False, error=f"timed out: {method} {_redact(url)}")) from None
        except httpx.HTTPError as exc:
            raise _Failed(Delivery(ok=False, error=f"{type(exc).__name__}: {method} {_redact(url)}")) from None
        status = response.status_code
        if status == 429:
            wait = retry_after(response)
            if attempt < retry.max_retries and wait <= retry.max_wait:
                log.info("discord rate limit on %s; waiting %.2fs", _redact(url), wait)
                await asyncio.sleep(wait)
                continue
            raise _Failed(Delivery(ok=False, error="rate limited", retry_after=wait))
        if status >= 500:
            if attempt < retry.max_retries:
                await asyncio.sleep(retry.backoff * 2**attempt)
                continue
            raise _Failed(Delivery(ok=False, error=f"HTTP {status} from Discord"))
        if status >= 400:
            raise _Failed(Delivery(ok=False, error=_error_text(response), permanent=True))
        return response
    raise AssertionError("unreachable")  # pragma: no cover


def retry_after(response: httpx.Response) -> float:
    """Seconds to wait after a 429: the JSON body's `retry_after` (exact), else the headers."""
    candidates: list[Any] = []
    try:
        body = response.json()
        if isinstance(body, dict):
            candidates.append(body.get("retry_after"))
    except ValueError:
        pass
    candidates += [response.headers.get("X-RateLimit-Reset-After"), response.headers.get("Retry-After")]
    for value in candidates:
        try:
            if value is not None:
                return max(0.0, float(value))
        except (TypeError, ValueError):
            continue
    return 1.0


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        code = f" (code {body['code']})" if body.get("code") else ""
        return f"HTTP {response.status_code}: {body['message']}{code}"
    return f"HTTP {response.status_code}"


def _redact(url: str) -> str:
    """Webhook and interaction URLs carry a secret token; logs and errors show only its start."""
    return re.sub(r"(/(?:webhooks|interactions)/\d+/)([^/?]{6})[^/?]*", r"\1\2…", url)


# --- the adapter --------------------------------------------------------------------------------


class DiscordAdapter:
    """Posts cards to Discord channels by id (a snowflake, no `discord:` prefix) with a bot
    token, and to the webhook for the channel `webhook` or, with no bot token, for any channel.
    Also answers interactions (follow-ups and edits need no bot token: the interaction token is
    the credential)."""

    platform = "discord"
    limits = Limits

    def __init__(
        self,
        bot_token: str | None = None,
        webhook_url: str | None = None,
        api_url: str | None = None,
        application_id: str | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        max_wait: float = 5.0,
        backoff: float = 0.5,
    ):
        self.bot_token = bot_token
        self.webhook_url = webhook_url
        self.api_url = (api_url or DISCORD_API_URL).rstrip("/")
        self.application_id = application_id
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout))
        self.retry = _Retry(max_retries, max_wait, backoff)
        self._delivered: OrderedDict[tuple[str, str], str | None] = OrderedDict()

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    async def __aenter__(self) -> DiscordAdapter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def send(self, channel: str, cards: list[Card], *, idempotency_key: str) -> Delivery:
        remembered = (channel, idempotency_key)
        if remembered in self._delivered:
            return Delivery(ok=True, message_id=self._delivered[remembered])
        if not self.bot_token and not self.webhook_url:
            return Delivery(ok=False, error="no Discord bot token or webhook URL is configured", permanent=True)
        via_webhook = channel == WEBHOOK_CHANNEL or not self.bot_token
        if via_webhook and not self.webhook_url:
            return Delivery(ok=False, error="discord:webhook: DISCORD_WEBHOOK_URL is not set", permanent=True)
        try:
            first: str | None = None
            for part, message in enumerate(render(cards)):
                payload = message.payload()
                if not via_webhook:
                    payload |= {"nonce": nonce(idempotency_key, part), "enforce_nonce": True}
                    url = f"{self.api_url}/channels/{channel}/messages"
                    headers = self._auth()
                else:
                    url, headers = _with_query(self.webhook_url or "", "wait=true"), {}
                response = await _request(self.client, "POST", url, self.retry, headers=headers, payload=payload, files=message.files)
                first = first or _message_id(response)
        except _Failed as failed:
            log.warning("discord delivery %s to %s failed: %s", idempotency_key, channel, failed.delivery.error)
            return failed.delivery
        except Exception as exc:  # send() never raises: the outbox records the outcome and retries
            log.exception("discord delivery %s to %s failed", idempotency_key, channel)
            return Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")
        self._delivered[remembered] = first
        while len(self._delivered) > 10_000:
            self._delivered.popitem(last=False)
        return Delivery(ok=True, message_id=first)

    async def followup(self, interaction_token: str, cards: list[Card], *, ephemeral: bool = False) -> Delivery:
        """Post `cards` as follow-up messages to an interaction (after a deferred response)."""
        return await self._interaction_messages(interaction_token, render(cards), ephemeral=ephemeral, edit_first=False)

    async def edit_original(self, interaction_token: str, cards: list[Card], *, ephemeral: bool = False) -> Delivery:
        """Fill in a deferred response: the first message replaces @original (charts included),
        any further ones follow up. Use within the interaction token's 15 minutes."""
        return await self._interaction_messages(interaction_token, render(cards), ephemeral=ephemeral, edit_first=True)

    async def callback(self, interaction_id: str, interaction_token: str, response: dict[str, Any]) -> Delivery:
        """Answer an interaction through the callback endpoint (instead of the HTTP response)."""
        url = f"{self.api_url}/interactions/{interaction_id}/{interaction_token}/callback"
        try:
            await _request(self.client, "POST", url, self.retry, payload=response)
        except _Failed as failed:
            return failed.delivery
        except Exception as exc:
            return Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")
        return Delivery(ok=True)

    async def _interaction_messages(
        self, token: str, messages: list[Message], *, ephemeral: bool, edit_first: bool
    ) -> Delivery:
        if not self.application_id:
            return Delivery(ok=False, error="DISCORD_APPLICATION_ID is not configured", permanent=True)
        base = f"{self.api_url}/webhooks/{self.application_id}/{token}"
        first: str | None = None
        try:
            for index, message in enumerate(messages):
                payload = message.payload()
                if ephemeral:
                    payload["flags"] = EPHEMERAL
                if edit_first and index == 0:
                    response = await _request(self.client, "PATCH", f"{base}/messages/@original", self.retry, payload=payload, files=message.files)
                else:
                    response = await _request(self.client, "POST", base, self.retry, payload=payload, files=message.files)
                first = first or _message_id(response)
        except _Failed as failed:
            log.warning("discord interaction reply failed: %s", failed.delivery.error)
            return failed.delivery
        except Exception as exc:
            log.exception("discord interaction reply failed")
            return Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")
        return Delivery(ok=True, message_id=first)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bot {self.bot_token}"}


def _message_id(response: httpx.Response) -> str | None:
    try:
        return response.json().get("id")
    except ValueError:  # 204: a webhook that was not asked to wait
        return None


def _with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


# --- interactions -------------------------------------------------------------------------------


def verify_discord_signature(public_key_hex: str, signature_hex: str, timestamp: str, body: bytes | str) -> bool:
    """Whether `signature_hex` is the application's Ed25519 signature of timestamp + body (the
    `X-Signature-Ed25519` and `X-Signature-Timestamp` headers). Any malformed input — a key or
    signature that is not hex or has the wrong length, a missing value — is simply False."""
    try:
        message = timestamp.encode() + (body.encode() if isinstance(body, str) else bytes(body))
        VerifyKey(bytes.fromhex(public_key_hex)).verify(message, bytes.fromhex(signature_hex))
    except Exception:  # BadSignatureError, PyNaCl's errors for wrong lengths, bad hex, None: all "no"
        return False
    return True


def pong() -> dict[str, Any]:
    """The answer to Discord's PING."""
    return {"type": PONG}


def deferred(*, ephemeral: bool = False) -> dict[str, Any]:
    """'Thinking…': the reply follows with `edit_original` within 15 minutes."""
    response: dict[str, Any] = {"type": DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE}
    if ephemeral:
        response["data"] = {"flags": EPHEMERAL}
    return response


def message_response(cards: list[Card], *, ephemeral: bool = False) -> dict[str, Any] | None:
    """An immediate reply with the cards as embeds, or None when they need more than one
    message or carry a chart: then answer `deferred()` and send them with `edit_original`."""
    messages = render(cards)
    if len(messages) != 1 or messages[0].files:
        return None
    data = messages[0].payload()
    if ephemeral:
        data["flags"] = EPHEMERAL
    return {"type": CHANNEL_MESSAGE_WITH_SOURCE, "data": data}


# --- slash commands -----------------------------------------------------------------------------

STRING, INTEGER, NUMBER = 3, 4, 10
SUB_COMMAND = 1


def _option(kind: int, name: str, description: str, required: bool = False, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "name": name, "description": description, "required": required, **extra}


def _sub(name: str, description: str, *options: dict[str, Any]) -> dict[str, Any]:
    return {"type": SUB_COMMAND, "name": name, "description": description, "options": list(options)}


#: `/deflation` and its subcommands, mirroring the command texts (`price MODEL`, …).
DEFLATION_COMMAND: dict[str, Any] = {
    "name": "deflation",
    "type": 1,
    "description": "How fast LLM inference prices fall",
    "options": [
        _sub("help", "Every command with an example"),
        _sub("price", "Current prices of a model and how they changed", _option(STRING, "model", "Model name, e.g. gpt-4o", True)),
        _sub("history", "Every price interval of a model", _option(STRING, "model", "Model name, e.g. gpt-4o", True)),
        _sub("cheapest", "The cheapest models, overall or in a tier", _option(STRING, "tier", "Capability tier, e.g. gpt-4-class")),
        _sub(
            "trend",
            "Annual price decline of a tier or a model",
            _option(STRING, "target", "A tier or a model name"),
            _option(STRING, "window", "How far back, e.g. 365d or 2y"),
        ),
        _sub(
            "margin",
            "What falling prices do to a seat-priced product's gross margin",
            _option(NUMBER, "price", "Seat price, USD per period", True, min_value=0),
            _option(NUMBER, "cost", "Inference cost per seat in year 0, USD per period", True, min_value=0),
            _option(STRING, "rate", "Annual decline, e.g. 0.7 or 70%"),
            _option(INTEGER, "years", "Years to project", min_value=0, max_value=50),
        ),
        _sub("digest", "This week's digest, now"),
        _sub("signals", "The watch indicators"),
        _sub(
            "indicator",
            "One watch indicator; admins record and delete its readings and guide-downs",
            _option(STRING, "words", "NAME | set NAME VALUE [AS_OF] [NOTE] | event NAME COMPANY OLD NEW [DATE] | delete NAME DAY [COMPANY]", True),
        ),
        _sub("sources", "Each price source's last good poll, last error and models"),
        _sub(
            "subscribe",
            "Post alerts (and the digest) in this channel",
            _option(STRING, "filters", "e.g. kinds=cut providers=openai models=gpt-4o* min=10% digest=yes"),
        ),
        _sub("unsubscribe", "Stop alerts and the digest in this channel"),
        _sub("subscriptions", "This channel's subscription"),
        _sub(
            "mute",
            "Silence alerts for models matching a pattern",
            _option(STRING, "pattern", "Model glob, e.g. gpt-4o*", True),
            _option(STRING, "duration", "For how long, e.g. 6h, 1d or 2w", True),
            _option(STRING, "reason", "Why, shown in mutes"),
        ),
        _sub("unmute", "Lift a mute", _option(STRING, "id", "The mute's id, from mutes", True)),
        _sub("mutes", "The mutes in force in this channel"),
    ],
}


def command_text(data: dict[str, Any]) -> str:
    """An interaction's `/deflation` data as the command text the command layer parses, e.g.
    `price gpt-4o` or `mute gpt-4o* 1d too noisy`. Options follow the order they are declared in
    `DEFLATION_COMMAND`; a value with spaces is double-quoted, except the last free-text option
    (filters, reason), which is the rest of the line."""
    options = data.get("options") or []
    if not options or options[0].get("type") != SUB_COMMAND:
        return ""
    sub = options[0]
    given = {o.get("name"): o.get("value") for o in sub.get("options") or []}
    declared = next((s["options"] for s in DEFLATION_COMMAND["options"] if s["name"] == sub.get("name")), [])
    words = [str(sub.get("name", ""))]
    names = [o["name"] for o in declared if given.get(o["name"]) is not None]
    for position, name in enumerate(names):
        value = _number_text(given[name])
        last = position == len(names) - 1
        if not last and (not value or any(c.isspace() for c in value)):
            value = '"' + value.replace('"', "'") + '"'
        words.append(value)
    return " ".join(word for word in words if word)


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


async def register_commands(
    client: httpx.AsyncClient,
    application_id: str,
    bot_token: str,
    *,
    guild_id: str | None = None,
    api_url: str | None = None,
    backoff: float = 0.5,
) -> list[dict[str, Any]]:
    """Overwrite the application's commands with `/deflation` (globally, or in one guild, where
    changes show at once), and return what Discord stored. Raises ConfigError when Discord
    rejects the token or application id, DeflationWatchError when it cannot be reached."""
    base = (api_url or DISCORD_API_URL).rstrip("/")
    path = f"/applications/{application_id}" + (f"/guilds/{guild_id}" if guild_id else "") + "/commands"
    try:
        response = await _request(
            client, "PUT", base + path, _Retry(backoff=backoff), headers={"Authorization": f"Bot {bot_token}"}, payload=[DEFLATION_COMMAND]
        )
    except _Failed as failed:
        if failed.delivery.permanent:
            raise ConfigError(
                f"Discord refused the commands for application {application_id}"
                f"{f' in guild {guild_id}' if guild_id else ''}: {failed.delivery.error}; "
                "check DISCORD_APPLICATION_ID and DISCORD_BOT_TOKEN"
            ) from None
        raise DeflationWatchError(f"could not register commands with Discord: {failed.delivery.error}") from None
    return response.json()
