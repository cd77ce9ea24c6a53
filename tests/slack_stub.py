"""A local stand-in for Slack: the Web API methods ragbot calls, and response_url endpoints.

It listens on 127.0.0.1 on a free port, records every call, and answers in Slack's shape
({"ok": true, ...}). Point RAGBOT_SLACK_API_URL at `stub.api_url`, and put
`stub.response_url(...)` in slash command payloads. Also signs requests the way Slack does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

BOT_USER_ID = "UBOTRAGBOT"
BOT_ID = "BBOTRAGBOT"
TEAM_ID = "T0TEST0001"


@dataclass(frozen=True)
class Call:
    """One request the stub received: the Web API method (or "response_url") and its payload."""

    method: str
    path: str
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    at: float = 0.0


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack adds to a request: v0 HMAC-SHA256 over `v0:{timestamp}:{body}`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


class SlackStub:
    """A threaded HTTP server that records calls; use as a context manager."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._ts = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                stub._handle(self, raw)

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval for the loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>"""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL (what RAGBOT_SLACK_API_URL points at)."""
        return f"{self.base_url}/api/"

    def response_url(self, name: str) -> str:
        """A response_url for a slash command payload; POSTs to it are recorded."""
        return f"{self.base_url}/response/{name}"

    def __enter__(self) -> SlackStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def reset(self) -> None:
        """Forget the calls recorded so far."""
        with self._lock:
            self.calls.clear()

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls of one method ("chat.postMessage", "response_url", ...)."""
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(
        self, predicate: Callable[[list[Call]], bool], timeout: float = 10.0
    ) -> list[Call]:
        """Block until predicate(calls) holds; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self.calls)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"stub: condition not met in {timeout}s; calls: {self.calls}"
                    )
                self._changed.wait(left)
            return list(self.calls)

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        path = handler.path.split("?", 1)[0]
        payload = _parse(raw, handler.headers.get("Content-Type", ""))
        if path.startswith("/api/"):
            method = path[len("/api/") :]
            reply = self._api_reply(method, payload)
        elif path.startswith("/response/"):
            method = "response_url"
            reply = {"ok": True}
        else:
            method = "unknown"
            reply = {"ok": False, "error": "not_found"}
        call = Call(method, path, payload, dict(handler.headers.items()), time.monotonic())
        with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        body = json.dumps(reply).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _api_reply(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://test.slack.com/",
                "team": "Test",
                "user": "ragbot",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
            }
        if method == "chat.postMessage":
            with self._lock:
                self._ts += 1
                ts = f"1700000000.{self._ts:06d}"
            return {
                "ok": True,
                "channel": payload.get("channel"),
                "ts": ts,
                "message": {
                    "type": "message",
                    "bot_id": BOT_ID,
                    "text": payload.get("text"),
                    "ts": ts,
                },
            }
        if method in ("reactions.add", "reactions.remove"):
            return {"ok": True}
        if method == "views.open":
            view = payload.get("view")
            if not payload.get("trigger_id") or not isinstance(view, dict):
                return {"ok": False, "error": "invalid_arguments"}
            with self._lock:
                self._ts += 1
                view_id = f"V0STUB{self._ts:06d}"
            return {"ok": True, "view": {**view, "id": view_id, "team_id": TEAM_ID}}
        return {"ok": False, "error": "unknown_method"}


def _parse(raw: bytes, content_type: str) -> dict[str, Any]:
    text = raw.decode("utf-8")
    if "json" in content_type:
        data = json.loads(text or "{}")
        return data if isinstance(data, dict) else {"_": data}
    form: dict[str, Any] = dict(parse_qsl(text, keep_blank_values=True))
    for key in ("blocks", "attachments", "view"):  # slack_sdk may JSON-encode these in a form
        if isinstance(form.get(key), str):
            form[key] = json.loads(form[key])
    return form
