"""A fake Slack Web API on loopback: the methods the bot calls, with Slack's answers and
Slack's checks (Block Kit limits, tokens, channels), so an adapter that breaks a rule fails here
as it would in Slack.

    chat.postMessage, chat.update, conversations.history (metadata only with
    include_all_metadata), conversations.info, auth.test, files.getUploadURLExternal, the upload
    URL it hands out, files.completeUploadExternal, response_url endpoints, and
    apps.connections.open (with the app-level token) once `socket_mode()` has started the
    Socket Mode WebSocket server (`tests.fakes.fake_slack_socket`).

Point a client at `fake.api_url`. Script failures with `rate_limit`, `server_error` and
`fail_with`, or the generic `script`/`delay` of the base class.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

from tests.fakes._server import Answer, Call, FakeServer
from tests.fakes.fake_slack_socket import FakeSlackSocket

BOT_USER = "U0BOT"
BOT_ID = "B0BOT"


def slack_signature(secret: str, timestamp: str | int, body: bytes | str) -> str:
    """The `X-Slack-Signature` Slack sends: v0= + hex HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    text = body.decode() if isinstance(body, bytes) else body
    mac = hmac.new(secret.encode(), f"v0:{timestamp}:{text}".encode(), hashlib.sha256)
    return "v0=" + mac.hexdigest()


def slack_headers(secret: str, body: bytes | str, timestamp: int | None = None) -> dict[str, str]:
    """The signing headers for a request to the bot's `/slack/events`, signed now (or at
    `timestamp`, to test a stale request)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": slack_signature(secret, stamp, body)}


@dataclass
class Upload:
    file_id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None
    alt_txt: str | None = None


class FakeSlack(FakeServer):
    def __init__(self, token: str = "xoxb-test-token", channels: set[str] | None = None) -> None:
        super().__init__()
        self.token = token  # None accepts any token
        self.known_channels = channels  # None: every channel exists and the bot is in it
        self.archived: set[str] = set()
        self.history: dict[str, list[dict[str, Any]]] = {}  # channel -> messages, oldest first
        self.uploads: dict[str, Upload] = {}
        self.responses: dict[str, list[dict[str, Any]]] = {}  # response_url id -> bodies
        self._ids = itertools.count(1)
        self._clock = time.time()
        self.socket: FakeSlackSocket | None = None

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    def socket_mode(self, app_token: str = "xapp-1-A0DEFLATION-1-test") -> FakeSlackSocket:
        """Turn Socket Mode on: start the WebSocket server that `apps.connections.open`
        (called with `app_token`) hands out URLs to. `stop()` stops it too."""
        if self.socket is None:
            self.socket = FakeSlackSocket(app_token).start()
        return self.socket

    def stop(self) -> None:
        if self.socket is not None:
            self.socket.stop()
        super().stop()

    def response_url(self, hook: str = "T0001/1234/abcd") -> str:
        return f"{self.base}/commands/{hook}"

    # -- scripting helpers --

    def rate_limit(self, retry_after: str = "1", *, times: int = 1, route: str | None = None, after: int = 0) -> None:
        self.script(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": retry_after}, times=times, route=route, after=after)

    def server_error(self, status: int = 500, *, times: int = 1, route: str | None = None, after: int = 0) -> None:
        self.script(status=status, body=b"<html>upstream error</html>", times=times, route=route, after=after)

    def fail_with(self, error: str, *, times: int = 1, route: str | None = None, after: int = 0) -> None:
        self.script(status=200, body={"ok": False, "error": error}, times=times, route=route, after=after)

    # -- what tests read --

    def messages(self, channel: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.history.get(channel, []))

    def posted(self) -> list[Call]:
        """Successful chat.postMessage calls."""
        return [c for c in self.calls_to("chat.postMessage") if c.status == 200 and not c.scripted]

    # -- the platform --

    def route_of(self, call: Call) -> str:
        if call.path.startswith("/api/"):
            return call.path.removeprefix("/api/")
        if call.path.startswith("/upload/"):
            return "upload"
        if call.path.startswith("/commands/"):
            return "response_url"
        return "unknown"

    def handle(self, call: Call) -> Answer:
        if call.route == "upload":
            return self._upload(call)
        if call.route == "response_url":
            self.responses.setdefault(call.path.removeprefix("/commands/"), []).append(call.json or call.params)
            return Answer(200, b"ok")
        if call.route == "apps.connections.open":  # the one method that takes the app-level token
            return self._apps_connections_open(call)
        if self.token is not None:
            auth = call.headers.get("Authorization", "")
            if not auth:
                return _error("not_authed")
            if auth != f"Bearer {self.token}":
                return _error("invalid_auth")
        method = getattr(self, "_" + call.route.replace(".", "_"), None)
        if method is None:
            return _error("unknown_method")
        return method(call.params)

    def _apps_connections_open(self, call: Call) -> Answer:
        auth = call.headers.get("Authorization", "")
        if not auth:
            return _error("not_authed")
        token = auth.removeprefix("Bearer ")
        if not token.startswith("xapp-"):
            return _error("not_allowed_token_type")  # a bot or user token
        if self.socket is None or token != self.socket.app_token:
            return _error("invalid_auth")
        if call.verb != "POST":
            return _error("insecure_request")
        return _ok(url=self.socket.issue_url())

    def _auth_test(self, params: dict[str, Any]) -> Answer:
        return _ok(url=self.base + "/", team="Deflation Test", user="deflation-watch", team_id="T0001", user_id=BOT_USER, bot_id=BOT_ID)

    def _conversations_info(self, params: dict[str, Any]) -> Answer:
        channel = params.get("channel", "")
        if problem := self._channel_problem(channel, reading=True):
            return problem
        return _ok(channel={"id": channel, "name": channel.lower(), "is_member": True, "is_archived": channel in self.archived})

    def _chat_postMessage(self, params: dict[str, Any]) -> Answer:  # noqa: N802 (Slack's method name)
        channel = params.get("channel", "")
        if problem := self._channel_problem(channel):
            return problem
        blocks = _decoded(params.get("blocks"))
        text = params.get("text")
        if not text and not blocks:
            return _error("no_text")
        if text and len(text) > 40000:
            return _error("msg_too_long")
        if blocks is not None and (errors := block_errors(blocks)):
            return _error("invalid_blocks", errors=errors)
        message: dict[str, Any] = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": text or "", "ts": self._ts()}
        if blocks:
            message["blocks"] = blocks
        metadata = _decoded(params.get("metadata"))
        if metadata is not None:
            if not isinstance(metadata, dict) or "event_type" not in metadata or "event_payload" not in metadata:
                return _error("invalid_metadata_format")
            message["metadata"] = metadata
        self.history.setdefault(channel, []).append(message)
        shown = {k: v for k, v in message.items() if k != "metadata"}
        return _ok(channel=channel, ts=message["ts"], message=shown)

    def _chat_update(self, params: dict[str, Any]) -> Answer:
        channel, ts = params.get("channel", ""), params.get("ts")
        if problem := self._channel_problem(channel):
            return problem
        for message in self.history.get(channel, []):
            if message["ts"] == ts:
                blocks = _decoded(params.get("blocks"))
                if blocks is not None and (errors := block_errors(blocks)):
                    return _error("invalid_blocks", errors=errors)
                message.update({k: v for k, v in (("text", params.get("text")), ("blocks", blocks)) if v is not None})
                return _ok(channel=channel, ts=ts, text=message["text"])
        return _error("message_not_found")

    def _conversations_history(self, params: dict[str, Any]) -> Answer:
        channel = params.get("channel", "")
        if problem := self._channel_problem(channel, reading=True):
            return problem
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or "inf")
        limit = int(params.get("limit") or 100)
        found = [m for m in reversed(self.history.get(channel, [])) if oldest < float(m["ts"]) <= latest]
        page = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in found[:limit]]
        return _ok(messages=page, has_more=len(found) > limit, response_metadata={"next_cursor": ""})

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> Answer:  # noqa: N802
        filename, length = params.get("filename"), params.get("length")
        if not filename or not str(length or "").isdigit():
            return _error("invalid_arguments")
        file_id = f"F{next(self._ids):08d}"
        self.uploads[file_id] = Upload(file_id, filename, int(length), alt_txt=params.get("alt_txt"))
        return _ok(upload_url=f"{self.base}/upload/{file_id}", file_id=file_id)

    def _upload(self, call: Call) -> Answer:
        upload = self.uploads.get(call.path.removeprefix("/upload/"))
        if upload is None:
            return Answer(404, b"not found")
        upload.data = call.body
        return Answer(200, f"OK - {len(call.body)}".encode())

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> Answer:  # noqa: N802
        files = _decoded(params.get("files")) or []
        channel = params.get("channel_id")
        if channel and (problem := self._channel_problem(channel)):
            return problem
        done = []
        for item in files:
            upload = self.uploads.get(item.get("id"))
            if upload is None or upload.data is None:
                return _error("file_not_found")
            if len(upload.data) != upload.length:
                return _error("file_upload_size_mismatch")
            upload.title, upload.channel = item.get("title") or upload.filename, channel
            done.append({"id": upload.file_id, "name": upload.filename, "title": upload.title, "mimetype": "image/png", "size": upload.length})
        if channel:
            self.history.setdefault(channel, []).append(
                {"type": "message", "user": BOT_USER, "text": params.get("initial_comment") or "", "files": done, "upload": True, "ts": self._ts()}
            )
        return _ok(files=[{"id": f["id"], "title": f["title"]} for f in done])

    def _channel_problem(self, channel: str, *, reading: bool = False) -> Answer | None:
        if not channel or (self.known_channels is not None and channel not in self.known_channels):
            return _error("channel_not_found")
        if channel in self.archived and not reading:
            return _error("is_archived")
        return None

    def _ts(self) -> str:
        # unique and increasing, like Slack's: seconds.microseconds
        self._clock = max(self._clock + 0.000001, time.time())
        return f"{self._clock:.6f}"


def block_errors(blocks: Any) -> list[str]:
    """Slack's Block Kit rules for the blocks the bot sends; an empty list means valid."""
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    errors = []
    if len(blocks) > 50:
        errors.append(f"{len(blocks)} blocks, over the 50 a message allows")
    for index, block in enumerate(blocks):
        kind = block.get("type")
        where = f"blocks[{index}] ({kind})"
        if kind == "header":
            text = block.get("text", {})
            if text.get("type") != "plain_text" or not 1 <= len(text.get("text", "")) <= 150:
                errors.append(f"{where}: header text must be plain_text of 1 to 150 characters")
        elif kind == "section":
            text, fields = block.get("text"), block.get("fields")
            if text is None and not fields:
                errors.append(f"{where}: needs text or fields")
            if text is not None and not 1 <= len(text.get("text", "")) <= 3000:
                errors.append(f"{where}: text must be 1 to 3000 characters, is {len(text.get('text', ''))}")
            if fields is not None:
                if len(fields) > 10:
                    errors.append(f"{where}: {len(fields)} fields, over 10")
                errors += [f"{where}: field of {len(f.get('text', ''))} characters" for f in fields if not 1 <= len(f.get("text", "")) <= 2000]
        elif kind == "context":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 10:
                errors.append(f"{where}: {len(elements)} elements, must be 1 to 10")
            errors += [f"{where}: element over 3000 characters" for e in elements if len(e.get("text", "")) > 3000]
        elif kind not in ("divider", "image", "actions", "rich_text"):
            errors.append(f"{where}: unknown block type")
    return errors


def _decoded(value: Any) -> Any:
    """Form-encoded calls carry JSON arguments as strings."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        return json.loads(value)
    return value


def _ok(**fields: Any) -> Answer:
    return Answer(200, {"ok": True, **fields})


def _error(error: str, **extra: Any) -> Answer:
    return Answer(200, {"ok": False, "error": error, **extra})
