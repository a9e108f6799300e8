"""The one error tree of frontdesk.

Every failure a client may see is a :class:`FrontdeskError` with a stable ``code`` and an HTTP
``status``; the web middleware maps it to ``{"success": false, "error": ..., "code": ...}``.
Anything else that escapes is a bug and becomes a bare 500 without details.
"""

from __future__ import annotations

from typing import Any


class FrontdeskError(Exception):
    """Base of every expected error. ``message`` is safe to show to a client."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details


class InvalidInput(FrontdeskError):
    """The request is well-formed but its values are not acceptable (HTTP 422)."""

    status = 422
    code = "invalid_input"


class MalformedRequest(FrontdeskError):
    """The body cannot be parsed at all (HTTP 400)."""

    status = 400
    code = "malformed"


class PayloadTooLarge(FrontdeskError):
    status = 413
    code = "too_large"


class UnsupportedMediaType(FrontdeskError):
    status = 415
    code = "unsupported_media_type"


class Unauthorized(FrontdeskError):
    status = 401
    code = "unauthorized"


class Forbidden(FrontdeskError):
    status = 403
    code = "forbidden"


class NotFound(FrontdeskError):
    """Also used for other tenants' ids: no existence oracle."""

    status = 404
    code = "not_found"


class Conflict(FrontdeskError):
    status = 409
    code = "conflict"


class SlotTaken(Conflict):
    """The wished time is no longer free (or never was)."""

    code = "slot_taken"


class PolicyViolation(Conflict):
    """A business policy forbids the action (cancellation window, limits...)."""

    code = "policy_violation"


class TermsChanged(PolicyViolation):
    """What an action gives or costs got worse after the customer was told (a refund window
    passed between the quote and their yes): ask them again, never act on the old terms."""

    code = "terms_changed"


class InvalidTransition(Conflict):
    """The appointment is not in a state that allows this action."""

    code = "invalid_transition"


class TooManyRequests(FrontdeskError):
    """Slow down: a rate limit (e.g. dashboard logins) was reached (HTTP 429)."""

    status = 429
    code = "rate_limited"


class ServiceUnavailable(FrontdeskError):
    status = 503
    code = "unavailable"


class ConfigError(Exception):
    """Startup configuration is missing or invalid; the message names every offending key."""
