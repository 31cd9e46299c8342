"""Errors born with their HTTP meaning: every failure a client can cause is a ProxyError."""

from __future__ import annotations


class ProxyError(Exception):
    """Base of every error with a status; `detail` is safe to show to the client."""

    status = 500
    title = "Internal Server Error"
    slug = "internal"
    # Unexpected server-side failures are logged; client mistakes are not worth a log line.
    log = True

    def __init__(self, detail: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = dict(headers or {})

    @property
    def type_uri(self) -> str:
        return f"https://progimage.dev/problems/{self.slug}"

    def problem(self) -> dict[str, object]:
        """RFC 9457 problem details body."""
        return {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


class ClientError(ProxyError):
    log = False


class BadRequest(ClientError):
    status, title, slug = 400, "Bad Request", "bad-request"


class Unauthorized(ClientError):
    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="progimage"'})


class Forbidden(ClientError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(ClientError):
    status, title, slug = 404, "Not Found", "not-found"


class MethodNotAllowed(ClientError):
    status, title, slug = 405, "Method Not Allowed", "method-not-allowed"


class PayloadTooLarge(ClientError):
    status, title, slug = 413, "Payload Too Large", "too-large"


class UnsupportedMediaType(ClientError):
    status, title, slug = 415, "Unsupported Media Type", "unsupported-media-type"


class RangeNotSatisfiable(ClientError):
    status, title, slug = 416, "Range Not Satisfiable", "range-not-satisfiable"


class Unprocessable(ClientError):
    """The bytes claim to be an image but cannot be decoded within the limits."""

    status, title, slug = 422, "Unprocessable Image", "unprocessable-image"


class BadGateway(ProxyError):
    status, title, slug = 502, "Bad Gateway", "bad-gateway"
    log = False


class UpstreamMissing(BadGateway):
    """The remote source answered 404 or 410: still a 502 here, but a fallback image says
    `not-found` rather than `upstream-error`."""


class Overloaded(ProxyError):
    status, title, slug = 503, "Service Unavailable", "overloaded"
    log = False

    def __init__(self, detail: str = "render queue is full", retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class GatewayTimeout(ProxyError):
    status, title, slug = 504, "Gateway Timeout", "gateway-timeout"
    log = False


class InsufficientStorage(ProxyError):
    status, title, slug = 507, "Insufficient Storage", "insufficient-storage"
