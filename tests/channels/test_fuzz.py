"""R19: every ``parse`` turns any input into events or ``MalformedRequest``, never another exception.

Arbitrary JSON values, arbitrary bytes, and recorded fixtures with parts replaced or removed.
The default example count keeps this file to a few seconds; the full R19 run is
``FRONTDESK_FUZZ_EXAMPLES=10000 pytest tests/channels/test_fuzz.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.base import InboundEvent
from channels.registry import build
from core.errors import MalformedRequest
from tests.channels.conftest import payload, payload_names
from tests.channels.test_registry import FULL
from tests.conftest import T0

EXAMPLES = int(os.environ.get("FRONTDESK_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
DELETE = object()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", "text", "whatsapp", "page", "instagram", "messages", "interactive", "button_reply", "1"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=10), st.sampled_from(["id", "text", "type", "message", "from", "mid"])),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=20,
)
CHANNELS = sorted(FULL)
FIXTURES = {
    name: [payload(name, f) for f in payload_names(name, ".txt" if name == "sms" else ".json")] for name in CHANNELS
}


def _channel(name: str) -> Any:
    clock: Callable[[], datetime] = lambda: T0  # noqa: E731
    return build(name, FULL[name], agent="sunrise", http=httpx.AsyncClient(), clock=clock)


ADAPTERS = {name: _channel(name) for name in CHANNELS}


def _check(name: str, body: bytes) -> None:
    try:
        events = ADAPTERS[name].parse(body, {})
    except MalformedRequest:
        return
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, InboundEvent) and event.channel == name
        assert isinstance(event.provider_message_id, str) and event.provider_message_id
        assert isinstance(event.sender, str) and isinstance(event.target, str) and isinstance(event.text, str)
        assert isinstance(event.order, int)
        for value in (event.provider_message_id, event.sender, event.target, event.text, event.choice or ""):
            value.encode("utf-8")  # storable: no lone surrogates
            assert "\x00" not in value


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*prefix, index)))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return None if new is DELETE else new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if new is DELETE and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(value[head], rest, new)
        return copy
    copy_list = list(value)
    if new is DELETE and not rest:
        copy_list.pop(head)
    else:
        copy_list[head] = _replace(value[head], rest, new)
    return copy_list


@st.composite
def mutated_json(draw: st.DrawFn, name: str) -> bytes:
    value = json.loads(draw(st.sampled_from(FIXTURES[name])))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(value)))
        value = _replace(value, path, draw(st.one_of(st.just(DELETE), json_values)))
    return json.dumps(value).encode()


@st.composite
def mutated_form(draw: st.DrawFn) -> bytes:
    pairs = parse_qsl(draw(st.sampled_from(FIXTURES["sms"])).decode(), keep_blank_values=True)
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(pairs)))
        new = (
            draw(st.sampled_from(["Body", "From", "To", "MessageSid", "OptOutType", "NumMedia", "MessageStatus"])),
            draw(st.text(max_size=20)),
        )
        if index < len(pairs) and draw(st.booleans()):
            pairs.pop(index)
        else:
            pairs.insert(index, new)
    return urlencode(pairs).encode()


@pytest.mark.parametrize("name", CHANNELS)
@FUZZ
@given(value=json_values)
def test_any_json_value(name: str, value: Any) -> None:
    _check(name, json.dumps(value).encode())


@pytest.mark.parametrize("name", CHANNELS)
@FUZZ
@given(body=st.binary(max_size=200))
def test_any_bytes(name: str, body: bytes) -> None:
    _check(name, body)


@pytest.mark.parametrize("name", [n for n in CHANNELS if n != "sms"])
@FUZZ
@given(data=st.data())
def test_mutated_fixtures(name: str, data: st.DataObject) -> None:
    _check(name, data.draw(mutated_json(name)))


@FUZZ
@given(body=mutated_form())
def test_mutated_sms_forms(body: bytes) -> None:
    _check("sms", body)


@FUZZ
@given(pairs=st.lists(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=8))
def test_any_form(pairs: list[tuple[str, str]]) -> None:
    _check("sms", urlencode(pairs).encode())


@pytest.mark.parametrize("name", CHANNELS)
@pytest.mark.parametrize("body", [b'"\\ud800"', b'{"object":"\\ud800"}', b"[" * 100000, b"1" * 5000])
def test_edge_bodies(name: str, body: bytes) -> None:
    _check(name, body)
