"""The exception tree of ragbot; each class carries the HTTP status it maps to.

RagbotError (500)
├── BadRequest (400)
│   ├── InvalidJson (400)
│   ├── InvalidRequest (422)   the JSON does not fit the request's schema
│   ├── InvalidQuestion (422)
│   └── PayloadTooLarge (413)
├── InvalidSignature (401)    a Slack request whose signature does not verify
├── NotFound (404)
│   └── UnknownRequest (404)   feedback for a request id with no reply record
├── MethodNotAllowed (405)
├── HttpError (any)            another HTTP status from the framework, kept as it is
├── RateLimited (429)          one client asked too often; Retry-After says when to try again
├── Overloaded (503)           no room to start the question within the queue's budget
├── CorpusError (500)          the corpus folder cannot be read or is empty
├── BuildError (500)           an index build failed; the previous index is untouched
├── IndexError_ (503)          the index cannot be used as it is
│   ├── IndexMissing (503)
│   ├── IndexCorrupt (503)
│   ├── IndexMismatch (503)    built with another model, chunker or encoding
│   └── IndexStale (503)       the corpus changed since the build
└── StoreUnavailable (503)     the state store (SQLite file or Redis) cannot be used now
"""

from __future__ import annotations


class RagbotError(Exception):
    """Base of every error ragbot raises on purpose."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, detail: object | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.retry_after = retry_after  # seconds, sent as Retry-After when set

    @property
    def headers(self) -> dict[str, str]:
        """Headers the response carries beside the error body."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class BadRequest(RagbotError):
    """The request cannot be understood."""

    status_code = 400
    code = "bad_request"


class InvalidJson(BadRequest):
    """The body is not JSON the service can read (not UTF-8, too deep, numbers past limits)."""

    code = "invalid_json"


class InvalidRequest(BadRequest):
    """The body is JSON but does not fit the request's schema."""

    status_code = 422
    code = "invalid_request"


class InvalidQuestion(BadRequest):
    """The question is empty, too long, of the wrong type or holds control characters."""

    status_code = 422
    code = "invalid_question"


class PayloadTooLarge(BadRequest):
    """The request body exceeds the configured limit."""

    status_code = 413
    code = "payload_too_large"


class InvalidSignature(RagbotError):
    """A request that claims to come from Slack and whose signature does not verify."""

    status_code = 401
    code = "invalid_signature"


class NotFound(RagbotError):
    """No such route."""

    status_code = 404
    code = "not_found"


class UnknownRequest(NotFound):
    """Feedback names a request id that has no reply record."""

    code = "unknown_request"


class MethodNotAllowed(RagbotError):
    """The route exists but not for this method."""

    status_code = 405
    code = "method_not_allowed"


class HttpError(RagbotError):
    """An HTTP error from the framework with no class of its own (its status is kept)."""

    status_code = 400
    code = "http_error"


class RateLimited(RagbotError):
    """One client sent more questions than its rate limit allows."""

    status_code = 429
    code = "rate_limited"


class Overloaded(RagbotError):
    """Every worker is busy and the queue is full, or the wait would exceed its budget."""

    status_code = 503
    code = "overloaded"


class CorpusError(RagbotError):
    """The corpus folder cannot be read or holds no article."""

    code = "corpus_error"


class BuildError(RagbotError):
    """An index build failed; the previous index is untouched."""

    code = "build_error"


class IndexError_(RagbotError):  # trailing underscore: do not shadow the builtin IndexError
    """The index cannot be used as it is."""

    status_code = 503
    code = "index_unavailable"


class IndexMissing(IndexError_):
    """No index has been built yet."""

    code = "index_missing"


class IndexCorrupt(IndexError_):
    """An index file is missing, unreadable or does not match its recorded hash."""

    code = "index_corrupt"


class IndexMismatch(IndexError_):
    """The index was built with another model, chunker or encoding than the settings ask for."""

    code = "index_mismatch"


class IndexStale(IndexError_):
    """The corpus changed since the index was built."""

    code = "index_stale"


class StoreUnavailable(RagbotError):
    """The state store cannot be opened or does not answer; its message is for the logs."""

    status_code = 503
    code = "store_unavailable"
