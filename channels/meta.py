"""What WhatsApp, Messenger and Instagram share: Meta's webhook signature and verify handshake,
and calls to the Graph API with its error codes mapped to :class:`DeliveryError`.

The signature is HMAC-SHA256 of the raw request bytes with the app secret. Meta signs the body it
sends (with non-ASCII escaped as ``\\uXXXX``), so it is checked before anything parses it: JSON that
was decoded and re-encoded never matches. Neither the body nor the header is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from channels import delivery
from channels.base import ChannelConfig, DeliveryError
from channels.inbound import header, load_json
from core.errors import Forbidden, MalformedRequest, Unauthorized

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
_HEX64 = re.compile(r"[0-9a-f]{64}")

# Graph error codes every Meta channel shares (``error.code``); channel-specific ones are passed in.
_SHARED_CODES: dict[int, tuple[str, bool]] = {
    190: ("auth", True),  # access token expired or invalid
    102: ("auth", True),
    10: ("permission", True),  # 10 + subcode 2018278 is Messenger's window; callers check it first
    200: ("permission", True),
    100: ("invalid", True),  # invalid parameter: a bug on our side, retrying will not help
    # Our page or number is temporarily blocked for policy violations: the business's problem, not the
    # customer's (never "blocked", which would mark the customer unreachable); it counts toward
    # channel_down, so admins hear of it (reference/channels.md: "ops alert").
    368: ("sender_blocked", True),
    4: ("rate_limited", False),  # application request limit
    17: ("rate_limited", False),
    32: ("rate_limited", False),
    613: ("rate_limited", False),
    80007: ("rate_limited", False),
    1: ("unavailable", False),  # unknown error, retry
    2: ("unavailable", False),  # service temporarily unavailable
}


class MetaAppConfig(ChannelConfig):
    """The Meta app's part of a WhatsApp, Messenger or Instagram config: its secret signs webhooks,
    its verify token answers the handshake."""

    app_secret: SecretStr = SecretStr("")
    verify_token: SecretStr = SecretStr("")
    api_base_url: str = "https://graph.facebook.com/v21.0"


def signature(app_secret: str, body: bytes) -> str:
    """The header value Meta would send for ``body`` (tests sign fixtures with it)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(app_secret: SecretStr, body: bytes, headers: Mapping[str, str]) -> None:
    """Raise ``Unauthorized`` without the header, ``Forbidden`` unless it is the body's HMAC."""
    value = header(headers, SIGNATURE_HEADER)
    if value is None or not value.strip():
        raise Unauthorized("missing signature", code="signature_missing")
    value = value.strip()
    digest = value[len("sha256=") :] if value[:7].lower() == "sha256=" else ""
    digest = digest.lower()
    secret = app_secret.get_secret_value()
    if not secret or not _HEX64.fullmatch(digest):
        raise Forbidden("invalid signature", code="signature_invalid")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), digest.encode("ascii")):
        raise Forbidden("invalid signature", code="signature_invalid")


def handshake(query: Mapping[str, str], verify_token: SecretStr) -> str:
    """The GET subscription check: the ``hub.challenge`` to echo when the token matches."""
    mode = query.get("hub.mode")
    token = query.get("hub.verify_token")
    challenge = query.get("hub.challenge")
    expected = verify_token.get_secret_value()
    if (
        mode != "subscribe"
        or not isinstance(token, str)
        or not isinstance(challenge, str)
        or not expected
        or not hmac.compare_digest(token.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))
    ):
        raise Forbidden("verification failed", code="verify_token_invalid")
    return challenge


def envelope(body: bytes, object_kind: str) -> list[dict[str, Any]]:
    """The ``entry`` list of a webhook for ``object_kind``; ``MalformedRequest`` for anything else."""
    data = load_json(body)
    if not isinstance(data, dict) or data.get("object") != object_kind:
        raise MalformedRequest(f"not a {object_kind} webhook")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise MalformedRequest("the webhook has no entry list")
    return [e for e in entries if isinstance(e, dict)]


def graph_error(response: httpx.Response, codes: Mapping[int, tuple[str, bool]] | None = None) -> DeliveryError:
    """A failed Graph call as a :class:`DeliveryError`: the channel's ``codes`` first, then the shared
    ones, then the HTTP status."""
    error = delivery.json_object(response).get("error")
    error = error if isinstance(error, dict) else {}
    code, subcode = error.get("code"), error.get("error_subcode")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    subcode = subcode if isinstance(subcode, int) and not isinstance(subcode, bool) else None
    wait = delivery.retry_after(response.headers.get("retry-after"))
    channel_codes = codes or {}
    known: tuple[str, bool] | None = None
    if subcode is not None and subcode in channel_codes:
        known = channel_codes[subcode]
    elif code is not None:
        known = channel_codes.get(code) or _SHARED_CODES.get(code)
    if known is not None:
        reason, permanent = known
        return DeliveryError(
            reason, permanent=permanent, retry_after=None if permanent else wait, status=response.status_code
        )
    return delivery.from_status(response.status_code, response.headers)


async def graph_post(
    http: httpx.AsyncClient,
    url: str,
    token: SecretStr,
    body: Mapping[str, Any],
    codes: Mapping[int, tuple[str, bool]] | None = None,
) -> dict[str, Any]:
    """POST ``body`` with the bearer ``token``; the answer's JSON or a :class:`DeliveryError`."""
    response = await delivery.post(
        http, url, json=dict(body), headers={"Authorization": f"Bearer {token.get_secret_value()}"}
    )
    if response.status_code >= 400:
        failure = graph_error(response, codes)
        log.warning("graph send failed: %s (HTTP %s)", failure.reason, response.status_code)
        raise failure
    return delivery.json_object(response)
