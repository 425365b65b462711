"""A loopback image server for tests: good images, 404/410, a server that
trickles one byte at a time, one that never answers, an endless body,
redirects to where a test says, and a closed port. It binds 127.0.0.1 only,
every handler loop is bounded, and it stops when the `with` block ends.
Image downloads reach public addresses only, so tests that read from it
allow loopback: LOOPBACK (dbt vars) or loopback_limits()."""

from __future__ import annotations

import http.server
import io
import socket
import threading
import time
from collections import Counter
from typing import Any

from PIL import Image

from embed_udfs.config import IngestLimits

# The var that lets image downloads reach the loopback servers of a test.
LOOPBACK = {"image_allowed_networks": ["127.0.0.1/32"]}


def loopback_limits(**limits: Any) -> IngestLimits:
    """IngestLimits(**limits) that may download from 127.0.0.1."""
    return IngestLimits(image_allowed_networks=("127.0.0.1/32",), **limits)


def png_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackImages:
    """`with LoopbackImages() as server: server.url("/ok.png")`."""

    TRICKLE_INTERVAL_S = 1.0  # one byte per interval on /slow.png
    HANG_S = 20.0  # how long /hang.png keeps a connection open without answering
    ENDLESS_LIMIT = 64 << 20  # /endless.png stops after this many bytes whatever happens

    def __init__(self) -> None:
        self.png = png_bytes()
        self.stop = threading.Event()
        self.sent: Counter[str] = Counter()  # body bytes sent per path
        self.active: Counter[str] = Counter()  # requests in progress per path
        self.peak: Counter[str] = Counter()  # most requests in progress at once per path
        self.requests: Counter[str] = Counter()  # requests received per path
        self.redirects: dict[str, str] = {}  # /redirect*.png -> its Location (302)
        self.lock = threading.Lock()
        self._httpd: http.server.ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> LoopbackImages:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                kind = self.path.split("?")[0].rsplit("/", 1)[-1]
                with outer.lock:
                    outer.requests[kind] += 1
                    outer.active[kind] += 1
                    outer.peak[kind] = max(outer.peak[kind], outer.active[kind])
                try:
                    self._serve(kind)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with outer.lock:
                        outer.active[kind] -= 1

            def _serve(self, kind: str) -> None:
                if kind.startswith("ok") or kind.startswith("pause"):
                    if kind.startswith("pause"):
                        outer.stop.wait(0.3)
                    self._headers(200, len(outer.png))
                    self._send(kind, outer.png)
                elif kind.startswith("missing"):
                    self.send_error(404)
                elif kind.startswith("gone"):
                    self.send_error(410)
                elif kind.startswith("busy"):
                    self.send_error(503)
                elif kind.startswith("slow"):
                    self._headers(200, len(outer.png))
                    for byte in outer.png[:60]:
                        if outer.stop.wait(outer.TRICKLE_INTERVAL_S):
                            return
                        self._send(kind, bytes([byte]))
                elif kind.startswith("hang"):
                    outer.stop.wait(outer.HANG_S)
                elif kind.startswith("endless"):
                    self._headers(200, None)
                    block = b"\0" * 65536
                    while outer.sent[kind] < outer.ENDLESS_LIMIT and not outer.stop.is_set():
                        self._send(kind, block)
                elif kind.startswith("redirect") and kind in outer.redirects:
                    self.send_response(302)
                    self.send_header("Location", outer.redirects[kind])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif kind.startswith("declared"):
                    self._headers(200, 10**12)
                else:
                    self.send_error(404)

            def _headers(self, status: int, length: int | None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "image/png")
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()

            def _send(self, kind: str, payload: bytes) -> None:
                self.wfile.write(payload)
                self.wfile.flush()
                with outer.lock:
                    outer.sent[kind] += len(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        time.sleep(0.05)
