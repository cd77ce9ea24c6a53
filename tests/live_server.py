"""The real service under uvicorn in a thread on 127.0.0.1, for the tests that need a server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """The ASGI app under uvicorn in a thread on a fixed port; stop() and start() at will."""

    def __init__(self, app: Any, port: int | None = None, http: Any = "auto") -> None:
        self.app = app
        self.http = http  # uvicorn's protocol: "auto", or a class such as ragbot's own
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 20.0) -> Service:
        """Serve, and return once the port accepts connections."""
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            http=self.http,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name=f"uvicorn-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not start on port {self.port} within {timeout} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Close the port and wait for the server thread to end."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
            if self._thread.is_alive():
                raise RuntimeError(f"uvicorn on port {self.port} did not stop")
        self._server = None
        self._thread = None


@contextmanager
def serve(app: Any, http: Any = "auto") -> Iterator[str]:
    """Run the app on a free port for the length of a with-block; yield its base URL."""
    server = Service(app, http=http).start()
    try:
        yield server.url
    finally:
        server.stop()
