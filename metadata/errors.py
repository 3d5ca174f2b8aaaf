"""Every exception the service raises on purpose. Each class says its HTTP status (`status`);
`metadata/http_errors.py` is the one place that turns them into responses.

MetadataError
├── InvalidSettings            bad configuration at start (not an HTTP error)
├── ClientError                the caller's fault: 4xx
│   ├── BadRequest             400: malformed header, parameter or body
│   │   └── InvalidDocument    400: an instance document that fails validation
│   │       └── UserDataTooLarge  413: its user data is over the size limit
│   ├── Unauthorized           401: admin token or session token missing or wrong
│   ├── Forbidden              403: refused by policy
│   │   └── BadSignature       403: Neutron-style signature missing or wrong
│   ├── NotFound               404: no such path
│   │   └── InstanceNotFound   404: nobody we know asked, or no such instance
│   ├── MethodNotAllowed       405
│   ├── Conflict               409: e.g. a second password POST
│   │   └── WriteConflict      409: concurrent writes met in the database (retried first)
│   ├── PreconditionFailed     412: stale If-Match
│   ├── RequestTimeout         408: a body that did not arrive in time
│   ├── PayloadTooLarge        413
│   ├── URITooLong             414
│   ├── HeadersTooLarge        431: too many request headers
│   └── TooManyRequests        429: rate limited
└── ServiceUnavailable         503: a backing service is down
    └── StoreUnavailable       503: the database does not answer
"""

from __future__ import annotations

from collections.abc import Iterable


class MetadataError(Exception):
    status = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class InvalidSettings(MetadataError):
    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid settings:\n  " + "\n  ".join(self.problems))


class ClientError(MetadataError):
    status = 400


class BadRequest(ClientError):
    status = 400


class InvalidDocument(BadRequest):
    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field}: {problem}")


class UserDataTooLarge(InvalidDocument):
    """Over the user data size limit inside a document: named like any field, but 413 as on
    the raw user-data route."""

    status = 413


class Unauthorized(ClientError):
    status = 401


class Forbidden(ClientError):
    status = 403


class BadSignature(Forbidden):
    pass


class NotFound(ClientError):
    status = 404


class InstanceNotFound(NotFound):
    pass


class MethodNotAllowed(ClientError):
    status = 405

    def __init__(self, allowed: Iterable[str], message: str = "method not allowed") -> None:
        self.allowed = tuple(allowed)
        super().__init__(message)


class Conflict(ClientError):
    status = 409


class WriteConflict(Conflict):
    """Two writes met in the database (a unique key taken meanwhile, a deadlock): the store
    retries the transaction, and only a conflict that persists reaches the caller."""


class PreconditionFailed(ClientError):
    status = 412


class RequestTimeout(ClientError):
    status = 408


class PayloadTooLarge(ClientError):
    status = 413


class URITooLong(ClientError):
    status = 414


class HeadersTooLarge(ClientError):
    status = 431


class TooManyRequests(ClientError):
    status = 429

    def __init__(self, retry_after: int, message: str = "too many requests") -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ServiceUnavailable(MetadataError):
    status = 503
    retry_after = 1


class StoreUnavailable(ServiceUnavailable):
    pass
