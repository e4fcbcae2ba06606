"""What the fake platform servers share: a threaded HTTP server on 127.0.0.1 that parses each
request (query, JSON, form or multipart body), records it as a `Call`, and answers either from a
script set by the test (a 429, a 500, an error body, a delay) or from the platform's own logic.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Part:
    """One file of a multipart body."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class Call:
    """One request as the fake saw it, and how it answered."""

    route: str  # the platform's name for it: "chat.postMessage", "create_message", …
    verb: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: list[Part] = field(default_factory=list)
    status: int = 0
    scripted: bool = False
    at: float = 0.0  # time.monotonic() when it arrived

    @property
    def params(self) -> dict[str, Any]:
        """Query, form fields and a JSON object body merged: where a platform reads arguments."""
        merged: dict[str, Any] = dict(self.query)
        merged.update(self.form)
        if isinstance(self.json, dict):
            merged.update(self.json)
        return merged


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # bytes as they are; anything else as JSON; None for no body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Scripted:
    answer: Answer | None  # None: after the delay, answer as the platform would
    times: int
    route: str | None  # only for this route; None for any
    delay: float = 0.0
    after: int = 0  # let this many matching requests through first


class FakeServer:
    """Subclasses implement `route_of(call)` and `handle(call) -> Answer`."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._script: list[Scripted] = []
        self.lock = threading.RLock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes; without this, Nagle's algorithm and the
                # client's delayed ACK hold every kept-alive response back ~40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server._serve(self, body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any  # noqa: N815 (http.server's naming)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- lifecycle --

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):  # noqa: ANN201 (returns the subclass)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):  # noqa: ANN204
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting --

    def script(
        self,
        *,
        status: int = 200,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        route: str | None = None,
        delay: float = 0.0,
        after: int = 0,
    ) -> None:
        """Answer the next `times` requests (to `route`, or any; after letting `after` of them
        through) with this instead."""
        with self.lock:
            self._script.append(Scripted(Answer(status, body, dict(headers or {})), times, route, delay, after))

    def delay(self, seconds: float, *, times: int = 1, route: str | None = None, after: int = 0) -> Scripted:
        """Hold the next `times` requests for `seconds`, then answer them normally (so a client
        that gave up still finds the work done: the timeout-after-success case). The returned
        step's `times` drops as requests reach it."""
        step = Scripted(None, times, route, seconds, after)
        with self.lock:
            self._script.append(step)
        return step

    def calls_to(self, route: str) -> list[Call]:
        with self.lock:
            return [call for call in self.calls if call.route == route]

    # -- the subclass's part --

    def route_of(self, call: Call) -> str:
        raise NotImplementedError

    def handle(self, call: Call) -> Answer:
        raise NotImplementedError

    # -- plumbing --

    def _serve(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        split = urlsplit(request.path)
        call = Call(
            route="",
            verb=request.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={name: value for name, value in request.headers.items()},
            body=body,
            at=time.monotonic(),
        )
        try:
            _parse_body(call, request.headers.get("Content-Type", ""))
        except ValueError as exc:
            call.form = {"__unparsable__": str(exc)}
        call.route = self.route_of(call)
        with self.lock:
            scripted = None
            for candidate in self._script:
                if candidate.times <= 0 or candidate.route not in (None, call.route):
                    continue
                if candidate.after > 0:
                    candidate.after -= 1
                    continue
                candidate.times -= 1
                scripted = candidate
                break
        if scripted and scripted.delay:
            time.sleep(scripted.delay)
        if scripted and scripted.answer is not None:
            answer, call.scripted = scripted.answer, True
        else:
            with self.lock:
                answer = self.handle(call)
        call.status = answer.status
        with self.lock:
            self.calls.append(call)
        if isinstance(answer.body, bytes):
            payload, kind = answer.body, "text/plain; charset=utf-8"
        elif answer.body is None:
            payload, kind = b"", None
        else:
            payload, kind = json.dumps(answer.body).encode(), "application/json; charset=utf-8"
        try:
            request.send_response(answer.status)
            headers = dict(answer.headers)
            if kind and "Content-Type" not in headers:
                headers["Content-Type"] = kind
            for name, value in headers.items():
                request.send_header(name, value)
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); the call is recorded all the same


def _parse_body(call: Call, content_type: str) -> None:
    kind = content_type.split(";")[0].strip().lower()
    if not call.body:
        return
    if kind == "application/json":
        call.json = json.loads(call.body)
    elif kind == "application/x-www-form-urlencoded":
        try:
            call.form = dict(parse_qsl(call.body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            pass  # urllib labels raw bytes (an upload) as a form; they stay in `body`
    elif kind == "multipart/form-data":
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + call.body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            data = part.get_payload(decode=True) or b""
            if filename is None:
                call.form[name] = data.decode()
            else:
                call.files.append(Part(name, filename, part.get_content_type(), data))
        if "payload_json" in call.form:
            call.json = json.loads(call.form["payload_json"])
