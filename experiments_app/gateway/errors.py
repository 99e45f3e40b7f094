"""Domain errors raised by the gateway.

Nothing from ``requests`` ever leaves the gateway: callers see only these. They carry no
request, response or headers (so never the management API key) and are raised outside the
``except`` block that caught the transport error, so no ``requests`` exception hangs off
``__context__`` either.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """Anything that went wrong talking to the upstream Management API."""

    default_message = "The experiment service failed."

    def __init__(self, message: str | None = None, *, status: int | None = None, retry_after: float | None = None):
        self.message = message or self.default_message
        self.status = status
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r}, retry_after={self.retry_after!r})"


class Unauthorized(UpstreamError):
    default_message = "The management API key was rejected."


class Forbidden(UpstreamError):
    default_message = "The management API key has no access to this project."


class NotFound(UpstreamError):
    default_message = "Not found upstream."


class InvalidInput(UpstreamError):
    default_message = "The experiment service rejected the input."

    def __init__(self, message: str | None = None, *, field: str | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.field = field


class RateLimited(UpstreamError):
    default_message = "Too many requests to the experiment service; try again later."


class BudgetExhausted(RateLimited):
    """The portal's own daily budget for the project is used up; nothing was sent."""

    default_message = "The daily request budget for this project is used up."


class UpstreamUnavailable(UpstreamError):
    default_message = "The experiment service is unavailable."


class UpstreamTimeout(UpstreamError):
    default_message = "The experiment service did not answer in time."


class WriteOutcomeUnknown(UpstreamUnavailable):
    """A non-repeatable write failed ambiguously and reading back could not settle whether it
    happened. The caller must look before trying again."""

    default_message = "The experiment service failed mid-write and could not confirm whether the change was made."
