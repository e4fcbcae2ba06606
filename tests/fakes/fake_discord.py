"""A fake Discord HTTP API (v10) on loopback, with Discord's answers and checks (embed limits,
nonce de-duplication with `enforce_nonce`, bot tokens, unknown channels and webhooks):

    POST  /channels/{id}/messages                         JSON, or multipart files[n] + payload_json
    POST  /webhooks/{id}/{token}[?wait=true]              also interaction follow-ups
    PATCH /webhooks/{app_id}/{token}/messages/@original
    POST  /interactions/{id}/{token}/callback
    PUT   /applications/{app_id}/commands
    PUT   /applications/{app_id}/guilds/{guild_id}/commands

Paths are served with or without the `/api` and `/api/v10` prefixes. Script failures with
`rate_limit`, `server_error` and `reject`, or the base class's `script`/`delay`.
"""

from __future__ import annotations

import itertools
import re
import time
from datetime import UTC, datetime
from typing import Any

from nacl.signing import SigningKey

from tests.fakes._server import Answer, Call, FakeServer

EMBED_LIMITS = {"title": 256, "description": 4096, "fields": 25, "name": 256, "value": 1024, "footer": 2048, "author": 256}
_ROUTES = [
    ("POST", re.compile(r"/channels/(?P<channel>\d+)/messages"), "create_message"),
    ("PATCH", re.compile(r"/webhooks/(?P<webhook>\d+)/(?P<token>[^/]+)/messages/(?P<message>@original|\d+)"), "edit_webhook_message"),
    ("POST", re.compile(r"/webhooks/(?P<webhook>\d+)/(?P<token>[^/]+)"), "execute_webhook"),
    ("POST", re.compile(r"/interactions/(?P<interaction>\d+)/(?P<token>[^/]+)/callback"), "interaction_callback"),
    ("PUT", re.compile(r"/applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands"), "bulk_overwrite_guild_commands"),
    ("PUT", re.compile(r"/applications/(?P<app>\d+)/commands"), "bulk_overwrite_global_commands"),
]
_NAME = re.compile(r"^[-_\w]{1,32}$")


def discord_sign(private_key: SigningKey | bytes | str, timestamp: str, body: bytes | str) -> str:
    """The `X-Signature-Ed25519` Discord sends: hex Ed25519 signature of timestamp + body.
    `private_key` is a SigningKey, its 32-byte seed, or that seed in hex."""
    if isinstance(private_key, str):
        private_key = bytes.fromhex(private_key)
    key = private_key if isinstance(private_key, SigningKey) else SigningKey(private_key)
    data = body.encode() if isinstance(body, str) else body
    return key.sign(timestamp.encode() + data).signature.hex()


def discord_headers(private_key: SigningKey | bytes | str, body: bytes | str, timestamp: str | None = None) -> dict[str, str]:
    """The signing headers of an interaction request, signed now (or at `timestamp`)."""
    stamp = timestamp or str(int(time.time()))
    return {"X-Signature-Ed25519": discord_sign(private_key, stamp, body), "X-Signature-Timestamp": stamp}


class FakeDiscord(FakeServer):
    def __init__(
        self,
        bot_token: str | None = "bot-test-token",
        application_id: str = "1100000000000000001",
        channels: set[str] | None = None,
        webhooks: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.bot_token = bot_token  # None accepts any
        self.application_id = application_id
        self.known_channels = channels  # None: every channel exists
        self.webhooks = webhooks  # id -> token; None: every webhook exists
        self.messages: dict[str, list[dict[str, Any]]] = {}  # channel or webhook id -> messages
        self.interactions: dict[str, list[dict[str, Any]]] = {}  # interaction token -> callback bodies
        self.originals: dict[str, dict[str, Any]] = {}  # interaction token -> @original
        self.followups: dict[str, list[dict[str, Any]]] = {}  # interaction token -> follow-ups
        self.commands: dict[str | None, list[dict[str, Any]]] = {}  # guild id (None: global) -> commands
        self._nonces: dict[tuple[str, str], dict[str, Any]] = {}
        self._ids = itertools.count(1)

    @property
    def api_url(self) -> str:
        return self.base + "/api/v10"

    def webhook_url(self, webhook_id: str = "1200000000000000001", token: str = "hook-token") -> str:
        return f"{self.base}/api/webhooks/{webhook_id}/{token}"

    # -- scripting helpers --

    def rate_limit(self, retry_after: float = 0.2, *, times: int = 1, route: str | None = None, after: int = 0, header_only: bool = False) -> None:
        """A 429 as Discord sends it: JSON with `retry_after` (seconds, fractional) and the same
        in headers; `header_only` plays a 429 from the edge with no JSON, only Retry-After."""
        headers = {"Retry-After": f"{retry_after:g}", "X-RateLimit-Scope": "user"}
        if header_only:
            self.script(status=429, body=b"rate limited", headers=headers, times=times, route=route, after=after)
            return
        headers |= {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": f"{retry_after:g}", "X-RateLimit-Bucket": "abcd1234"}
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
        self.script(status=429, body=body, headers=headers, times=times, route=route, after=after)

    def server_error(self, status: int = 500, *, times: int = 1, route: str | None = None, after: int = 0) -> None:
        self.script(status=status, body={"message": "500: Internal Server Error", "code": 0}, times=times, route=route, after=after)

    def reject(self, status: int = 403, code: int = 50001, message: str = "Missing Access", *, times: int = 1, route: str | None = None, after: int = 0) -> None:
        self.script(status=status, body={"message": message, "code": code}, times=times, route=route, after=after)

    # -- what tests read --

    def created(self) -> list[Call]:
        """Requests that created or returned a message (200), scripted answers excluded."""
        return [c for c in self.calls if c.route in ("create_message", "execute_webhook") and c.status in (200, 204) and not c.scripted]

    # -- the platform --

    def route_of(self, call: Call) -> str:
        path = re.sub(r"^/api(/v\d+)?", "", call.path)
        for verb, pattern, name in _ROUTES:
            if call.verb == verb and pattern.fullmatch(path):
                return name
        return "unknown"

    def handle(self, call: Call) -> Answer:
        path = re.sub(r"^/api(/v\d+)?", "", call.path)
        match = next(p.fullmatch(path) for verb, p, name in _ROUTES if name == call.route) if call.route != "unknown" else None
        if match is None:
            return _error(404, 0, "404: Not Found")
        return getattr(self, "_" + call.route)(call, match.groupdict())

    def _authorised(self, call: Call) -> Answer | None:
        if self.bot_token is None:
            return None
        if call.headers.get("Authorization") != f"Bot {self.bot_token}":
            return _error(401, 0, "401: Unauthorized")
        return None

    def _create_message(self, call: Call, args: dict[str, str]) -> Answer:
        if problem := self._authorised(call):
            return problem
        channel = args["channel"]
        if self.known_channels is not None and channel not in self.known_channels:
            return _error(404, 10003, "Unknown Channel")
        payload = call.json or {}
        if problem := _message_problem(payload, call):
            return problem
        nonce = payload.get("nonce")
        if nonce is not None and len(str(nonce)) > 25:
            return _error(400, 50035, "Invalid Form Body", errors={"nonce": "Must be 25 or fewer in length."})
        if nonce is not None and payload.get("enforce_nonce") and (channel, str(nonce)) in self._nonces:
            return Answer(200, self._nonces[(channel, str(nonce))])
        message = self._message(channel, payload, call)
        if nonce is not None:
            self._nonces[(channel, str(nonce))] = message
        return Answer(200, message)

    def _execute_webhook(self, call: Call, args: dict[str, str]) -> Answer:
        webhook, token = args["webhook"], args["token"]
        if webhook == self.application_id:  # an interaction follow-up; any token is taken as live
            payload = call.json or {}
            if problem := _message_problem(payload, call):
                return problem
            message = self._message(f"followup:{token}", payload, call)
            self.followups.setdefault(token, []).append(message)
            return Answer(200, message)
        if self.webhooks is not None and self.webhooks.get(webhook) != token:
            return _error(404, 10015, "Unknown Webhook")
        payload = call.json or {}
        if problem := _message_problem(payload, call):
            return problem
        message = self._message(webhook, payload, call) | {"webhook_id": webhook}
        return Answer(200, message) if call.query.get("wait") in ("true", "1", "True") else Answer(204)

    def _edit_webhook_message(self, call: Call, args: dict[str, str]) -> Answer:
        token = args["token"]
        if args["webhook"] != self.application_id:
            return _error(404, 10015, "Unknown Webhook")
        payload = call.json or {}
        if problem := _message_problem(payload, call, editing=True):
            return problem
        original = self.originals.get(token) or self._message(f"original:{token}", {}, call)
        original.update({k: v for k, v in payload.items() if k in ("content", "embeds", "flags")})
        original["attachments"] = _attachments(call) or original.get("attachments", [])
        self.originals[token] = original
        return Answer(200, original)

    def _interaction_callback(self, call: Call, args: dict[str, str]) -> Answer:
        body = call.json or {}
        if body.get("type") not in (1, 4, 5, 6, 7, 8, 9, 10, 12):
            return _error(400, 50035, "Invalid Form Body", errors={"type": "invalid interaction callback type"})
        self.interactions.setdefault(args["token"], []).append(body)
        if body.get("type") == 4:
            self.originals[args["token"]] = self._message(f"original:{args['token']}", body.get("data") or {}, call)
        return Answer(204)

    def _bulk_overwrite_global_commands(self, call: Call, args: dict[str, str]) -> Answer:
        return self._commands(call, args["app"], None)

    def _bulk_overwrite_guild_commands(self, call: Call, args: dict[str, str]) -> Answer:
        return self._commands(call, args["app"], args["guild"])

    def _commands(self, call: Call, app: str, guild: str | None) -> Answer:
        if problem := self._authorised(call):
            return problem
        if app != self.application_id:
            return _error(403, 50001, "Missing Access")
        commands = call.json
        if not isinstance(commands, list):
            return _error(400, 50035, "Invalid Form Body")
        if errors := command_errors(commands):
            return _error(400, 50035, "Invalid Form Body", errors=errors)
        stored = [{"id": str(next(self._ids) + 1300000000000000000), "application_id": app, "version": "1", **c} | ({"guild_id": guild} if guild else {}) for c in commands]
        self.commands[guild] = stored
        return Answer(200, stored)

    def _message(self, where: str, payload: dict[str, Any], call: Call) -> dict[str, Any]:
        message = {
            "id": str(next(self._ids) + 1400000000000000000),
            "channel_id": where,
            "type": 0,
            "content": payload.get("content", ""),
            "embeds": payload.get("embeds", []),
            "attachments": _attachments(call),
            "timestamp": datetime.now(UTC).isoformat(),
            "author": {"id": self.application_id, "username": "Deflation Watch", "bot": True},
            "flags": payload.get("flags", 0),
        }
        if "nonce" in payload:
            message["nonce"] = payload["nonce"]
        self.messages.setdefault(where, []).append(message)
        return message


def embed_errors(embeds: Any) -> list[str]:
    """Discord's embed limits; an empty list means valid."""
    if not isinstance(embeds, list):
        return ["embeds must be an array"]
    errors = []
    if len(embeds) > 10:
        errors.append(f"{len(embeds)} embeds, over 10")
    total = 0
    for index, embed in enumerate(embeds):
        where = f"embeds[{index}]"
        for key in ("title", "description"):
            value = embed.get(key, "")
            total += len(value)
            if len(value) > EMBED_LIMITS[key]:
                errors.append(f"{where}.{key}: {len(value)} characters, over {EMBED_LIMITS[key]}")
        fields = embed.get("fields", [])
        if len(fields) > EMBED_LIMITS["fields"]:
            errors.append(f"{where}: {len(fields)} fields, over 25")
        for position, item in enumerate(fields):
            for key in ("name", "value"):
                value = item.get(key, "")
                total += len(value)
                if not 1 <= len(value) <= EMBED_LIMITS[key]:
                    errors.append(f"{where}.fields[{position}].{key}: {len(value)} characters, must be 1 to {EMBED_LIMITS[key]}")
        for key, inner in (("footer", "text"), ("author", "name")):
            value = (embed.get(key) or {}).get(inner, "")
            total += len(value)
            if len(value) > EMBED_LIMITS[key]:
                errors.append(f"{where}.{key}: {len(value)} characters, over {EMBED_LIMITS[key]}")
    if total > 6000:
        errors.append(f"embeds hold {total} characters, over 6000")
    return errors


def command_errors(commands: list[dict[str, Any]]) -> list[str]:
    """Discord's rules for application command definitions that the fake checks."""
    errors = []

    def check(option: dict[str, Any], where: str) -> None:
        name, description = option.get("name", ""), option.get("description", "")
        if not _NAME.fullmatch(name) or name != name.lower():
            errors.append(f"{where}: bad name {name!r}")
        if not 1 <= len(description) <= 100:
            errors.append(f"{where}: description must be 1 to 100 characters")
        options = option.get("options") or []
        if len(options) > 25:
            errors.append(f"{where}: over 25 options")
        seen_optional = False
        for child in options:
            if child.get("type") not in (1, 2) and not child.get("required"):
                seen_optional = True
            elif child.get("required") and seen_optional:
                errors.append(f"{where}.{child.get('name')}: a required option after an optional one")
            check(child, f"{where}.{child.get('name')}")

    for command in commands:
        check(command, command.get("name", "?"))
    return errors


def _message_problem(payload: dict[str, Any], call: Call, *, editing: bool = False) -> Answer | None:
    content = payload.get("content") or ""
    if len(content) > 2000:
        return _error(400, 50035, "Invalid Form Body", errors={"content": "Must be 2000 or fewer in length."})
    if errors := embed_errors(payload.get("embeds") or []):
        return _error(400, 50035, "Invalid Form Body", errors={"embeds": errors})
    if not editing and not content and not payload.get("embeds") and not call.files:
        return _error(400, 50006, "Cannot send an empty message")
    return None


def _attachments(call: Call) -> list[dict[str, Any]]:
    return [
        {"id": str(1500000000000000000 + index), "filename": part.filename, "size": len(part.data), "content_type": part.content_type, "url": f"https://cdn.invalid/{part.filename}"}
        for index, part in enumerate(call.files)
    ]


def _error(status: int, code: int, message: str, **extra: Any) -> Answer:
    return Answer(status, {"message": message, "code": code, **extra})
