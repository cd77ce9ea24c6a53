"""`ragbot serve`: uvicorn, with a deadline on reading each request.

uvicorn (0.54, h11) never closes a connection that sends nothing, or that trickles its headers
or body: its keep-alive timer starts only after a response. `DeadlineProtocol` adds one timer:
from a connection's first moment, or from the end of its previous response, the whole next
request (headers and body) must arrive within RAGBOT_READ_TIMEOUT_S, or the connection is
closed. A request being answered is never cut: the deadline stops once the body is in.

uvicorn also writes a response's status line and headers as soon as the app starts it, and its
body in a later write. A replica killed between the two leaves the proxy holding a header it has
already passed on, too late to retry elsewhere, and the client gets a truncated reply. So each
response's head is held back and leaves in one write with its first body bytes: a replica killed
at any instant has sent a whole response or nothing, and nothing is retried by the proxy.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ragbot.config import Settings

log = logging.getLogger("ragbot.api")


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request does not arrive in time."""

    read_timeout_s = 5.0  # set from Settings by serve() before the server starts

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = getattr(self, "cycle", None)
        super().handle_events()
        if self.cycle is not None and self.cycle is not cycle:
            # A new request: its response is written through a transport that holds the head.
            self.cycle.transport = cast(
                asyncio.Transport, _HeadWithBody(self.cycle, self.transport)
            )
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
            self._disarm()  # the request is in: the app may take its time answering it

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets the same deadline

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.read_timeout_s, self._expire)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.info("closing a connection whose request did not arrive in time")
            self.transport.close()


class _HeadWithBody:
    """One response's transport: its head (status line and headers) is held until its first
    body write, and both go out in one `write`. Anything else passes straight through."""

    def __init__(self, cycle: Any, transport: asyncio.Transport) -> None:
        self._cycle = cycle
        self._transport = transport
        self._head: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        if not self._head_seen and self._cycle.response_started:
            # uvicorn marks the response started just before it writes the head.
            self._head_seen = True
            self._head = data
            return
        if self._head is not None:
            data, self._head = self._head + data, None
        if data:
            self._transport.write(data)

    def close(self) -> None:
        # A response whose body never came is dropped whole: the client (or proxy) sees a closed
        # connection rather than a header promising a body that will not arrive.
        self._head = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def serve(app: Any, settings: Settings) -> None:
    """Run the app on settings.host:settings.port until interrupted."""
    import uvicorn

    DeadlineProtocol.read_timeout_s = settings.read_timeout_s
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        http=DeadlineProtocol,
        # Between requests the deadline above is the idle limit; uvicorn's own timer may not
        # close a kept-alive connection sooner than it.
        timeout_keep_alive=max(5, int(settings.read_timeout_s) + 1),
        log_config=None,
        access_log=False,
    )
