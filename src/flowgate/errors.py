"""The error tree. Each class's docstring is its default message; ``code`` is the wire code.

The HTTP status of each code lives in ``flowgate.api.errors`` only: nothing below the API
knows HTTP.
"""

from __future__ import annotations


class FlowgateError(Exception):
    """Something went wrong."""

    code = "INTERNAL"

    def __init__(self, message: str | None = None, *, details: object = None) -> None:
        self.message = message or (type(self).__doc__ or self.code).strip()
        self.details = details
        super().__init__(self.message)


class InvalidRequest(FlowgateError):
    """The request is malformed."""

    code = "INVALID_REQUEST"


class ValidationFailed(FlowgateError):
    """Input validation failed"""

    code = "VALIDATION_ERROR"


class InvalidStatus(FlowgateError):
    """The object is not in a status that allows this."""

    code = "INVALID_STATUS"


class Unauthorized(FlowgateError):
    """Missing or invalid API key"""

    code = "UNAUTHORIZED"


class Forbidden(FlowgateError):
    """The API key lacks the scope for this action"""

    code = "FORBIDDEN"


class NotFound(FlowgateError):
    """Not found"""

    code = "NOT_FOUND"


class IdempotencyKeyReused(FlowgateError):
    """This idempotency key was already used with a different input"""

    code = "IDEMPOTENCY_KEY_REUSED"


class Conflict(FlowgateError):
    """The object is in a state that forbids this action"""

    code = "CONFLICT"


class MethodNotAllowed(FlowgateError):
    """Method not allowed"""

    code = "METHOD_NOT_ALLOWED"


class PayloadTooLarge(FlowgateError):
    """Request body is too large"""

    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(FlowgateError):
    """Unsupported media type"""

    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(FlowgateError):
    """Rate limit exceeded"""

    code = "RATE_LIMITED"

    def __init__(self, *, limit: int, retry_after: int, reset: int) -> None:
        super().__init__(f"Rate limit exceeded. Limit: {limit} requests per minute.")
        self.limit = limit
        self.retry_after = retry_after
        self.reset = reset


class QuotaExceeded(FlowgateError):
    """The project's run quota for this period is used"""

    code = "QUOTA_EXCEEDED"


class TemplateError(FlowgateError):
    """A template could not be parsed or rendered"""

    code = "TEMPLATE_ERROR"


class ConfigurationError(FlowgateError):
    """The server is misconfigured"""

    code = "INTERNAL"
