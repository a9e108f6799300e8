"""One way to call a provider and one way to turn a failed call into a :class:`DeliveryError`.

Transient (the outbox relay retries with backoff): timeouts, connection errors, 408, 429, 5xx,
honouring ``Retry-After`` seconds. Permanent (the row goes dead and is shown): every other 4xx.
Adapters refine this with their provider's error codes before falling back to it. Nothing here
logs or echoes a URL (Telegram puts the token in it), a recipient or a body.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
import httpx
from httpx_aiohttp import HttpxAiohttpClient

from channels.base import DeliveryError

Body = TypeVar("Body")

TRANSIENT_STATUSES = frozenset({408, 425, 429})
MAX_RETRY_AFTER = 24 * 3600.0


def retry_after(value: object) -> float | None:
    """Seconds to wait from a ``Retry-After`` header or a provider's ``retry_after`` field; None when
    absent or unreadable (HTTP dates are not used by these providers)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


def is_transient(status: int) -> bool:
    return status in TRANSIENT_STATUSES or status >= 500


def from_status(status: int, headers: Mapping[str, str] | None = None, *, reason: str | None = None) -> DeliveryError:
    """The default classification of an HTTP error answer."""
    if is_transient(status):
        word = reason or ("rate_limited" if status == 429 else "timeout" if status == 408 else "unavailable")
        wait = retry_after(headers.get("retry-after")) if headers is not None else None
        return DeliveryError(word, permanent=False, retry_after=wait, status=status)
    word = reason or ("auth" if status in (401, 403) else "rejected")
    return DeliveryError(word, permanent=True, status=status)


def client(timeout: float | httpx.Timeout) -> httpx.AsyncClient:
    """The client the adapters send with: httpx's interface over aiohttp's connection pool
    (httpx-aiohttp). Under load a send costs about a third of httpx's own pool here (the floor in
    ``bench/pipeline.py``); timeouts and connection failures still arrive as httpx's exceptions."""
    return HttpxAiohttpClient(timeout=timeout)


async def post(http: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """``http.post`` with transport failures turned into transient :class:`DeliveryError`."""
    try:
        return await http.post(url, **kwargs)
    except httpx.TimeoutException as exc:
        # httpx-aiohttp reports every aiohttp connection failure (refused, reset) as ConnectTimeout;
        # only aiohttp's own timeouts (TimeoutError subclasses) are timeouts here.
        cause = exc.__cause__
        refused = isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, TimeoutError)
        raise DeliveryError("connection" if refused else "timeout", permanent=False) from None
    except httpx.TransportError:
        raise DeliveryError("connection", permanent=False) from None


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or ``{}`` when it is not one (an HTML error page from a proxy)."""
    try:
        data = json.loads(response.content)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


async def send_parts(bodies: Sequence[Body], skip: int, post_one: Callable[[Body], Awaitable[str]]) -> str:
    """Post the parts of one message in order, from ``skip`` on (those went out on an earlier
    attempt); the provider's id of the last part. A failure says how many parts are out by now, so
    the next attempt resumes there. At least the last part is always sent: an attempt with nothing
    left to send (the rendering changed in between) must still end with an id."""
    start = min(max(skip, 0), len(bodies) - 1)
    message_id = ""
    for index in range(start, len(bodies)):
        try:
            message_id = await post_one(bodies[index])
        except DeliveryError as failure:
            failure.parts_sent = index
            raise
    return message_id
