"""SMS through Twilio Programmable Messaging: form-encoded webhooks in, ``Messages.json`` out.

``X-Twilio-Signature`` is base64(HMAC-SHA1(auth token, URL + every POST parameter name and value,
sorted by name)). The URL must be the public one Twilio called (the route passes the configured
public URL, never the internal ``http://`` address behind a proxy). SMS has no buttons: options
become numbered lines (the pipeline maps a bare digit reply back), links are written as URLs.
Long replies are split so that each SMS stays within ``max_segments`` segments, counted the way
carriers do: GSM-7 (160 septets, 153 per concatenated segment, extension characters cost two)
unless one character needs UCS-2 (70 code units, 67 per segment).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
from pydantic import Field, SecretStr, field_validator

from channels import delivery
from channels.base import Capabilities, ChannelConfig, DeliveryError, InboundEvent, OutboundMessage
from channels.inbound import clean, e164, header, identifier
from channels.text import link_line, numbered, split, with_tail
from core.errors import Forbidden, MalformedRequest, Unauthorized

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_BODY = 1600  # Twilio refuses longer bodies whatever the segment count

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")  # each costs an escape septet too

_OPT_OUT = {"stop": "stop", "start": "start", "help": "help"}
_STATUSES = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed", "undelivered": "failed"}
ERROR_CODES: dict[int, tuple[str, bool]] = {
    21610: ("opted_out", True),  # the recipient replied STOP
    21211: ("invalid_number", True),
    21614: ("invalid_number", True),  # not a mobile number
    21612: ("unreachable", True),
    21408: ("not_permitted", True),  # region not enabled
    21606: ("invalid_sender", True),
    21602: ("empty", True),
    20003: ("auth", True),
    20404: ("auth", True),  # account or resource not found
    20429: ("rate_limited", False),
    21611: ("queue_full", False),
}


class SmsConfig(ChannelConfig):
    account_sid: str = ""
    auth_token: SecretStr = SecretStr("")
    from_number: str = ""
    api_base_url: str = "https://api.twilio.com"
    max_segments: int = Field(default=10, ge=1, le=100)

    required: ClassVar[tuple[str, ...]] = ("account_sid", "auth_token", "from_number")

    @field_validator("from_number")
    @classmethod
    def _e164(cls, value: str) -> str:
        if not value:
            return value
        number = e164(value)
        if not number.startswith("+"):
            raise ValueError("not an E.164 phone number (e.g. +15550100200)")
        return number


# ----------------------------------------------------------------------------- segments
def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def segments(text: str) -> int:
    """How many SMS segments a carrier bills for ``text`` (concatenation headers included)."""
    if is_gsm7(text):
        costs = [2 if c in GSM7_EXTENSION else 1 for c in text]
        single, multi = 160, 153
    else:
        costs = [2 if ord(c) > 0xFFFF else 1 for c in text]  # UTF-16 code units; a pair stays together
        single, multi = 70, 67
    if sum(costs) <= single:
        return 1
    count, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            count, used = count + 1, 0
        used += cost
    return count


# ----------------------------------------------------------------------------- signature
def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """The name/value pairs of a form body, in order; ``ValueError`` when it is not a form."""
    text = body.decode("utf-8")
    return parse_qsl(text, keep_blank_values=True, errors="strict")


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for a form POST of ``params`` to ``url``."""
    grouped: dict[str, set[str]] = {}
    for name, value in params:
        grouped.setdefault(name, set()).add(value)
    signed = url + "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))
    digest = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8", "surrogatepass"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """Twilio drops the port of https URLs before signing; some deployments sign with the default
    port spelt out. Accept the URL as given, without its port, and with the default port."""
    variants = [url]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return variants
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if port is not None:
        variants.append(urlunsplit((parts.scheme, prefix + host, parts.path, parts.query, parts.fragment)))
    else:
        default = {"https": 443, "http": 80}.get(parts.scheme.lower())
        if default:
            with_port = f"{prefix}{host}:{default}"
            variants.append(urlunsplit((parts.scheme, with_port, parts.path, parts.query, parts.fragment)))
    return variants


class SmsChannel:
    name = "sms"
    capabilities = Capabilities(max_text=MAX_BODY, max_buttons=0, button_label_max=60, max_list_rows=0, links=False)

    def __init__(
        self,
        config: SmsConfig,
        *,
        agent: str,
        http: httpx.AsyncClient,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.agent = agent
        self.target = config.from_number
        self._http = http
        self._clock = clock
        base = config.api_base_url.rstrip("/")
        self._url = f"{base}/2010-04-01/Accounts/{config.account_sid}/Messages.json"

    # ------------------------------------------------------------------ inbound
    def verify(self, body: bytes, headers: Mapping[str, str], url: str) -> None:
        """``url`` must be the public URL Twilio was given (scheme, host, path and query as configured)."""
        value = header(headers, SIGNATURE_HEADER)
        if not value:
            raise Unauthorized("missing signature", code="signature_missing")
        token = self.config.auth_token.get_secret_value()
        try:
            pairs = form_pairs(body)
        except ValueError:
            raise Forbidden("invalid signature", code="signature_invalid") from None
        given = value.strip().encode("utf-8", "surrogatepass")
        matches = [hmac.compare_digest(signature(token, v, pairs).encode("ascii"), given) for v in _url_variants(url)]
        if not token or not any(matches):
            raise Forbidden("invalid signature", code="signature_invalid")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[InboundEvent]:
        try:
            pairs = form_pairs(body)
        except ValueError:
            raise MalformedRequest("the body is not a form") from None
        params: dict[str, str] = {}
        for name, value in pairs:
            params.setdefault(name, clean(value))
        sid = identifier(params.get("MessageSid")) or identifier(params.get("SmsMessageSid"))
        sender, to = identifier(params.get("From")), identifier(params.get("To"))
        if sid is None or sender is None or to is None:
            raise MalformedRequest("not a Twilio message webhook")
        target, customer = e164(to), e164(sender)
        status = params.get("MessageStatus", "").lower()
        if "Body" not in params and status:  # a status callback for one of our messages
            if status in _STATUSES:
                error = {"error": params["ErrorCode"]} if params.get("ErrorCode") else {}
                state = _STATUSES[status]
                return [InboundEvent(self.name, target, customer, sid, kind="status", status=state, extra=error)]
            return [InboundEvent(self.name, target, customer, f"{sid}#{status}", kind="ignored")]
        text = params.get("Body", "")
        extra: dict[str, Any] = {}
        opt_out = _OPT_OUT.get(params.get("OptOutType", "").strip().lower())
        if opt_out:
            extra["opt_out"] = opt_out
        media = params.get("NumMedia", "0")
        kind: Any = "text"
        if not text.strip() and media.isdigit() and int(media) > 0:
            kind = "unsupported"  # a picture without words
        return [InboundEvent(self.name, target, customer, sid, kind=kind, text=text, extra=extra)]

    # ------------------------------------------------------------------ outbound
    def _fits(self, text: str) -> int:
        """Segments of ``text``, or more than allowed when Twilio's character cap is passed."""
        return segments(text) if len(text) <= MAX_BODY else self.config.max_segments + 1

    def render(self, recipient: str, message: OutboundMessage) -> list[dict[str, str]]:
        """The form of each SMS: text split to ``max_segments``, numbered options and the link last."""
        tails = [numbered(message.options)] if message.options else []
        if message.link is not None:
            tails.append(link_line(message.link))
        limit = self.config.max_segments
        parts = with_tail(message.text, "\n".join(tails), limit, self._fits)
        parts = [piece for part in parts for piece in split(part, limit, self._fits)]
        return [{"To": recipient, "From": self.config.from_number, "Body": part} for part in parts]

    async def send(
        self,
        recipient: str,
        message: OutboundMessage,
        *,
        last_inbound_at: datetime | None = None,
        skip_parts: int = 0,
    ) -> str:
        return await delivery.send_parts(self.render(recipient, message), skip_parts, self._post)

    async def _post(self, form: dict[str, str]) -> str:
        auth = (self.config.account_sid, self.config.auth_token.get_secret_value())
        response = await delivery.post(self._http, self._url, data=form, auth=auth)
        answer = delivery.json_object(response)
        if response.status_code >= 400:
            failure = _error(response, answer)
            log.warning("twilio send failed: %s (HTTP %s)", failure.reason, response.status_code)
            raise failure
        sid = identifier(answer.get("sid")) or ""
        if not sid:
            raise DeliveryError("bad_response", permanent=True)
        return sid

    async def acknowledge(self, event: InboundEvent) -> None:
        """Nothing to do: Twilio only wants the webhook's (TwiML) answer."""


def _error(response: httpx.Response, answer: Mapping[str, Any]) -> DeliveryError:
    code = answer.get("code")
    known = ERROR_CODES.get(code) if isinstance(code, int) and not isinstance(code, bool) else None
    if known is not None:
        reason, permanent = known
        wait = None if permanent else delivery.retry_after(response.headers.get("retry-after"))
        return DeliveryError(reason, permanent=permanent, retry_after=wait, status=response.status_code)
    return delivery.from_status(response.status_code, response.headers)
