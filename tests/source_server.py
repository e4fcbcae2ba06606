"""A real HTTP server on 127.0.0.1 that plays upstream price sources in tests.

Routes are set per test: a body (with ETag handling, so conditional requests get a real 304),
a status, extra headers, a delay; and the ways a connection goes wrong: reset before any answer,
cut after part of the body, a body with no length (read until the close), a body dripped slowly.
Every request is recorded with its headers.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    etag: bool = True  # answer If-None-Match with 304 when the body is unchanged
    reset: bool = False  # close the connection with a TCP reset instead of answering
    cut: int | None = None  # send the headers (full Content-Length) and this many body bytes, then close
    length: bool = True  # send Content-Length; without it the body runs until the connection closes
    drip: float = 0.0  # seconds between the body's 64-byte pieces


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    status: int


class SourceServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                route = server.routes.get(self.path)
                if route is None:
                    return self._answer(404, b"not found", {}, self.path)
                time.sleep(route.delay)
                if route.reset:
                    server.requests.append(Seen(self.path, dict(self.headers), 0))
                    # Linger 0: close() sends RST at once, as a crashed upstream or middlebox does.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                headers = dict(route.headers)
                if route.etag and route.status == 200:
                    tag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
                    headers["ETag"] = tag
                    if self.headers.get("If-None-Match") == tag:
                        return self._answer(304, b"", headers, self.path)
                self._answer(route.status, route.body, headers, self.path, route)

            def _answer(self, status: int, body: bytes, headers: dict[str, str], path: str, route: Route | None = None) -> None:
                route = route or Route()
                server.requests.append(Seen(path, dict(self.headers), status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers and route.length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status == 304:
                    return
                if route.cut is not None:
                    self.wfile.write(body[: route.cut])
                    self.close_connection = True
                elif route.drip:
                    for start in range(0, len(body), 64):
                        self.wfile.write(body[start : start + 64])
                        self.wfile.flush()
                        time.sleep(route.drip)
                else:
                    self.wfile.write(body)
                if not route.length:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, body: bytes = b"", **options: object) -> str:
        self.routes[path] = Route(body=body, **options)
        return self.url(path)

    def start(self) -> SourceServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
