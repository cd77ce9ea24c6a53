"""Logging set-up shared by the CLI and the server: one JSON object a line on stderr."""

from __future__ import annotations

import json
import logging

# Libraries whose INFO lines are noise in a service log.
QUIET = ("bm25s", "sentence_transformers", "httpx", "faiss")


def setup_json_logging(level: int = logging.INFO) -> None:
    """Structured logs on stderr for everything, uvicorn's own lines included."""
    handler = logging.StreamHandler()
    handler.setFormatter(json_log_formatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def json_log_formatter() -> logging.Formatter:
    """Structured logs: one JSON object a line, extra fields included."""

    class JsonFormatter(logging.Formatter):
        SKIP = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

        def format(self, record: logging.LogRecord) -> str:
            data = {
                "time": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "event": record.getMessage(),
            }
            data.update({k: v for k, v in record.__dict__.items() if k not in self.SKIP})
            if record.exc_info:
                data["exc"] = self.formatException(record.exc_info)
            return json.dumps(data, default=str)

    return JsonFormatter()
