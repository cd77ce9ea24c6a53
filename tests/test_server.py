"""`ragbot serve`'s HTTP protocol: a response leaves whole or not at all.

Behind the proxy, a replica killed between a response's head and its body leaves nginx holding a
header it has already passed on, too late to retry on another replica. So the head waits for the
body, and a response whose body never comes is not started on the wire.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from live_server import serve

from ragbot.api.server import DeadlineProtocol

BODY = b'{"status": "answered"}'
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def app_that_pauses_between_head_and_body(release: threading.Event, fail: bool = False) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(BODY)).encode()),
                ],
            }
        )
        while not release.is_set():
            await asyncio.sleep(0.01)
        if fail:
            raise RuntimeError("the app died after starting its response")
        await send({"type": "http.response.body", "body": BODY})

    return app


def read_until_closed_or_quiet(sock: socket.socket, quiet_s: float) -> bytes:
    """Everything the server sends until it closes, or stays quiet for quiet_s."""
    sock.settimeout(quiet_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pass
    return received


def test_a_started_response_sends_nothing_until_its_body_and_then_all_of_it() -> None:
    release = threading.Event()
    app = app_that_pauses_between_head_and_body(release)
    with serve(app, http=DeadlineProtocol) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(REQUEST)
            assert read_until_closed_or_quiet(sock, 0.5) == b"", "the head left before the body"
            release.set()
            sock.settimeout(10)
            first = sock.recv(65536)
            # Head and body arrive together: they were written at once.
            assert first.startswith(b"HTTP/1.1 200") and first.endswith(BODY), first


def test_a_response_whose_body_never_comes_closes_the_connection_with_nothing_sent() -> None:
    release = threading.Event()
    app = app_that_pauses_between_head_and_body(release, fail=True)
    with serve(app, http=DeadlineProtocol) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(REQUEST)
            release.set()
            # A proxy sees a replica that closed without answering, and may try another one.
            assert read_until_closed_or_quiet(sock, 10) == b""


def test_plain_responses_are_unchanged() -> None:
    release = threading.Event()
    release.set()
    with serve(app_that_pauses_between_head_and_body(release), http=DeadlineProtocol) as url:
        port = int(url.rsplit(":", 1)[1])
        for _ in range(2):  # and a second request on the same kept-alive connection
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(REQUEST + REQUEST)
                received = read_until_closed_or_quiet(sock, 1.0)
                assert received.count(b"HTTP/1.1 200") == 2 and received.endswith(BODY)
