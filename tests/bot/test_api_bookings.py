"""The booking lifecycle through the real HTTP API (``/api/availability``, ``/api/bookings``...).

Every test talks to the real aiohttp app on a test server, with a real SQLite file, and checks
status codes, JSON bodies and what the database holds afterwards (through the API, or through
the storage layer where the API cannot show it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import create_app
from bot.context import CONTEXT
from storage import tables as t
from storage.engine import Database
from tests.conftest import Api, FrozenClock, booking_body, demo_business, make_settings, new_token, other_business

DAY = "2026-03-03"  # a Tuesday: everyone works 09:00-17:00 UTC
PHONES = ["+14155550101", "+14155550102", "+14155550103", "+14155550104", "+14155550105"]


def at(hhmm: str, day: str = DAY) -> str:
    return f"{day}T{hhmm}:00+00:00"


def utc(hhmm: str, day: str = DAY) -> datetime:
    return datetime.fromisoformat(at(hhmm, day)).astimezone(UTC)


def database_of(api: Api) -> Database:
    return api.client.server.app[CONTEXT].db


async def token_for(api: Api, business: str, clock: FrozenClock) -> str:
    return await new_token(database_of(api), business, clock)


async def call(
    client: TestClient, method: str, path: str, token: str | None, *, json: Any = None, **params: str
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    resp = await client.request(method, path, json=json, params=params or None, headers=headers)
    body = await resp.json() if resp.status != 204 else None
    return resp.status, body


async def custom_api(
    aiohttp_client: Any, sqlite_url: str, clock: FrozenClock, businesses: list[dict[str, Any]], **extra: Any
) -> Api:
    """The real app for a differently configured business (do not mix with the ``api`` fixture)."""
    settings = make_settings(sqlite_url, businesses, **extra)
    client = await aiohttp_client(create_app(settings, clock=clock))
    return Api(client, await new_token(client.server.app[CONTEXT].db, "acme", clock))


async def starts(api: Api, service: str, day: str = DAY, **params: str) -> list[str]:
    params.setdefault("tz", "UTC")
    status, data = await api.get(
        "/api/availability", agent="acme-bot", service=service, date_from=day, date_to=day, **params
    )
    assert status == 200, data
    return [s["start"] for s in data["slots"]]


async def book(api: Api, start: str, service: str = "checkup", phone: str = PHONES[0], **extra: Any) -> dict:
    status, data = await api.post("/api/bookings", booking_body(start, service=service, phone=phone, **extra))
    assert status == 201, data
    return data


async def count_rows(api: Api, table: Any) -> int:
    async with database_of(api).reading() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


# --- POST /api/bookings: shape and input validation ------------------------------------------------


async def test_create_answers_201_with_the_documented_shape(api: Api) -> None:
    status, data = await api.post("/api/bookings", booking_body(at("09:00"), service="solo", phone="+1 (415) 555-0101"))
    assert status == 201, data
    assert {"id", "status", "service", "staff", "start", "end", "customer"} <= set(data)
    assert data["status"] == "scheduled"
    assert data["service"] == "solo"
    assert data["staff"] == "ann"
    assert data["start"] == "2026-03-03T09:00:00+00:00"
    assert data["end"] == "2026-03-03T09:30:00+00:00"
    assert data["customer"]["name"] == "Jane Roe"
    assert data["customer"]["phone"] == "+14155550101"  # normalised to E.164
    status, listed = await api.get("/api/bookings", date_from=DAY, date_to=DAY)
    assert status == 200
    assert [b["id"] for b in listed["bookings"]] == [data["id"]]
    status, fetched = await api.get(f"/api/bookings/{data['id']}")
    assert status == 200
    assert fetched["start"] == data["start"] and fetched["customer"] == data["customer"]


async def test_start_given_in_another_offset_is_stored_as_the_same_instant(api: Api) -> None:
    data = await book(api, "2026-03-03T14:30:00+05:30", service="solo")  # = 09:00 UTC
    assert data["start"] == "2026-03-03T09:00:00+00:00"


async def test_start_comes_back_with_the_business_zone_offset(api: Api, clock: FrozenClock) -> None:
    # "other" is in Europe/London, which is on BST (+01:00) on 1 April 2026.
    token = await token_for(api, "other", clock)
    body = {
        "agent": "other-bot",
        "service": "chat",
        "start": "2026-04-01T09:00:00Z",
        "customer": {"name": "Olly Customer", "phone": "+447700900123"},
    }
    status, data = await call(api.client, "POST", "/api/bookings", token, json=body)
    assert status == 201, data
    assert data["start"] == "2026-04-01T10:00:00+01:00"
    assert data["end"] == "2026-04-01T10:30:00+01:00"
    assert data["staff"] == "zed"


async def test_taken_slot_is_409_with_nearest_alternatives(api: Api) -> None:
    await book(api, at("10:00"), service="solo")
    status, data = await api.post("/api/bookings", booking_body(at("10:00"), service="solo", phone=PHONES[1]))
    assert status == 409, data
    assert data["success"] is False and data["code"] == "slot_taken"
    # Alternatives are slots in the same JSON shape as /api/availability (business zone offset),
    # not Python reprs: the three nearest free ones to 10:00 (ties go to the earlier), in order.
    assert data["alternatives"] == [
        {"start": at("09:00"), "end": at("09:30"), "staff": ["ann"]},
        {"start": at("09:30"), "end": at("10:00"), "staff": ["ann"]},
        {"start": at("10:30"), "end": at("11:00"), "staff": ["ann"]},
    ]


async def test_slot_taken_alternatives_use_the_business_zone(api: Api, clock: FrozenClock) -> None:
    token = await token_for(api, "other", clock)

    def body(phone: str) -> dict[str, Any]:
        return {
            "agent": "other-bot",
            "service": "chat",
            "start": "2026-04-01T10:00:00+01:00",
            "customer": {"name": "Olly Customer", "phone": phone},
        }

    status, data = await call(api.client, "POST", "/api/bookings", token, json=body("+447700900123"))
    assert status == 201, data
    status, data = await call(api.client, "POST", "/api/bookings", token, json=body("+447700900124"))
    assert status == 409, data
    assert data["code"] == "slot_taken"
    starts_ = [s["start"] for s in data["alternatives"]]
    assert starts_ == ["2026-04-01T09:00:00+01:00", "2026-04-01T09:30:00+01:00", "2026-04-01T10:30:00+01:00"]


async def test_invalid_phone_is_422(api: Api) -> None:
    status, data = await api.post("/api/bookings", booking_body(at("09:00"), phone="call me maybe"))
    assert status == 422, data
    assert data["code"] == "invalid_phone"
    assert await count_rows(api, t.Appointment) == 0


async def test_unknown_service_is_404(api: Api) -> None:
    # The code answers 404 (not_found) for a service slug the business does not have.
    status, data = await api.post("/api/bookings", booking_body(at("09:00"), service="haircut"))
    assert status == 404, data
    assert data["code"] == "not_found"


async def test_naive_start_is_422(api: Api) -> None:
    status, data = await api.post("/api/bookings", booking_body("2026-03-03T09:00:00"))
    assert status == 422, data
    assert data["code"] == "invalid_input"
    assert "offset" in data["error"]
    status, data = await api.post("/api/bookings", booking_body("next tuesday"))
    assert status == 422, data


async def test_unknown_staff_is_422(api: Api) -> None:
    status, data = await api.post("/api/bookings", booking_body(at("09:00"), staff="zed"))
    assert status == 422, data
    assert data["code"] == "unknown_staff"
    # A staff member of the business who does not provide the service is refused the same way.
    status, data = await api.post("/api/bookings", booking_body(at("09:00"), service="solo", staff="bob"))
    assert status == 422, data
    assert data["code"] == "unknown_staff"
    assert await count_rows(api, t.Appointment) == 0


async def test_explicit_staff_is_honoured(api: Api) -> None:
    data = await book(api, at("09:00"), staff="bob")
    assert data["staff"] == "bob"


async def test_missing_and_extra_fields_are_422(api: Api) -> None:
    body = booking_body(at("09:00"))
    del body["customer"]
    status, data = await api.post("/api/bookings", body)
    assert status == 422 and data["code"] == "invalid_input"
    status, data = await api.post("/api/bookings", {**booking_body(at("09:00")), "surprise": 1})
    assert status == 422 and data["code"] == "invalid_input"


async def test_malformed_json_is_400(api: Api) -> None:
    resp = await api.client.post(
        "/api/bookings",
        data=b'{"service": "checkup", ',
        headers={**api.headers(), "Content-Type": "application/json"},
    )
    assert resp.status == 400
    data = await resp.json()
    assert data == {"success": False, "error": data["error"], "code": "malformed"}


async def test_non_object_body_is_400(api: Api) -> None:
    for body in ([booking_body(at("09:00"))], "checkup", 42):
        status, data = await call(api.client, "POST", "/api/bookings", api.token, json=body)
        assert status == 400, (body, data)
        assert data["code"] == "malformed"
    assert await count_rows(api, t.Appointment) == 0


async def test_body_over_max_body_bytes_is_413(aiohttp_client: Any, sqlite_url: str, clock: FrozenClock) -> None:
    api = await custom_api(
        aiohttp_client, sqlite_url, clock, [demo_business(), other_business()], server={"max_body_bytes": 2048}
    )
    small = booking_body(at("09:00"), service="solo")
    status, data = await api.post("/api/bookings", small)
    assert status == 201, data
    big = {**booking_body(at("10:00"), service="solo"), "idempotency_key": "x" * 150}
    big["customer"]["name"] = "N" * 3000
    status, data = await api.post("/api/bookings", big)
    assert status == 413, data
    assert data["success"] is False and data["code"] == "too_large"
    assert await count_rows(api, t.Appointment) == 1


async def test_missing_or_wrong_token_is_401(api: Api) -> None:
    body = booking_body(at("09:00"))
    for token in (None, "fd_not-a-real-token", "nonsense"):
        status, data = await call(api.client, "POST", "/api/bookings", token, json=body)
        assert status == 401, (token, data)
        assert data["code"] == "unauthorized"
    resp = await api.client.get(
        "/api/bookings", params={"date_from": DAY, "date_to": DAY}, headers={"Authorization": f"Basic {api.token}"}
    )
    assert resp.status == 401
    assert await count_rows(api, t.Appointment) == 0


async def test_other_tenant_gets_404_for_acme_ids_and_agent(api: Api, clock: FrozenClock) -> None:
    booking = await book(api, at("09:00"), service="solo")
    other = await token_for(api, "other", clock)
    bid = booking["id"]
    for method, path, body in (
        ("GET", f"/api/bookings/{bid}", None),
        ("POST", f"/api/bookings/{bid}/cancel", {}),
        ("POST", f"/api/bookings/{bid}/reschedule", {"start": at("11:00")}),
        ("GET", f"/api/bookings/{bid}/reschedule/alternatives", None),
        ("POST", f"/api/bookings/{bid}/complete", {}),
        ("POST", f"/api/bookings/{bid}/no-show", {}),
    ):
        status, data = await call(api.client, method, path, other, json=body)
        assert status == 404, (method, path, data)
        assert data["code"] == "not_found"
    # acme's agent slug does not exist for "other".
    status, data = await call(api.client, "POST", "/api/bookings", other, json=booking_body(at("10:00")))
    assert status == 404, data
    status, data = await call(
        api.client,
        "GET",
        "/api/availability",
        other,
        agent="acme-bot",
        service="chat",
        date_from=DAY,
        date_to=DAY,
        tz="UTC",
    )
    assert status == 404, data
    # Nor does it see acme's bookings in its list, and acme's booking is untouched.
    status, data = await call(api.client, "GET", "/api/bookings", other, date_from=DAY, date_to=DAY)
    assert status == 200 and data["bookings"] == []
    status, mine = await api.get(f"/api/bookings/{bid}")
    assert status == 200 and mine["status"] == "scheduled"


# --- #10 minimum notice ------------------------------------------------------------------------------


async def test_min_notice_is_rechecked_when_booking(aiohttp_client: Any, sqlite_url: str, clock: FrozenClock) -> None:
    api = await custom_api(aiohttp_client, sqlite_url, clock, [demo_business(min_notice_minutes=60)])
    clock.now = utc("10:00")
    listed = await starts(api, "checkup", tz="UTC")
    assert listed[0] == at("11:00")  # now + 60 minutes exactly is offered (inclusive boundary)
    assert at("10:30") not in listed
    # 10:30 is inside the notice: refused.
    status, data = await api.post("/api/bookings", booking_body(at("10:30")))
    assert status == 409, data
    assert data["code"] == "min_notice"
    # Exactly now + 60 minutes is bookable.
    first = await book(api, at("11:00"), staff="ann")
    assert first["start"] == at("11:00")
    # The 11:00 slot was listed for bob at 10:00; at 10:01 it is inside the notice and refused.
    clock.advance(minutes=1)
    status, data = await api.post("/api/bookings", booking_body(at("11:00"), staff="bob", phone=PHONES[1]))
    assert status == 409, data
    assert data["code"] == "min_notice"
    status, listed_bookings = await api.get("/api/bookings", date_from=DAY, date_to=DAY)
    assert [b["id"] for b in listed_bookings["bookings"]] == [first["id"]]


# --- #21 / #22 reschedule ----------------------------------------------------------------------------


async def test_reschedule_into_own_slot_is_allowed(api: Api) -> None:
    old = await book(api, at("10:00"), service="solo")
    status, moved = await api.post(f"/api/bookings/{old['id']}/reschedule", {"start": at("10:00")})
    assert status == 200, moved
    assert moved["id"] != old["id"]
    assert moved["status"] == "scheduled"
    assert moved["start"] == at("10:00") and moved["staff"] == "ann"
    assert moved["rescheduled_from"] == old["id"]
    assert moved["customer"] == old["customer"]
    status, previous = await api.get(f"/api/bookings/{old['id']}")
    assert previous["status"] == "rescheduled"
    assert previous["rescheduled_to"] == moved["id"]
    assert [e["to"] for e in previous["history"]] == ["scheduled", "rescheduled"]
    # The slot is held exactly once: still gone from availability, and a third party is refused.
    assert at("10:00") not in await starts(api, "solo")
    status, data = await api.post("/api/bookings", booking_body(at("10:00"), service="solo", phone=PHONES[1]))
    assert status == 409 and data["code"] == "slot_taken"


async def test_reschedule_shifting_by_15_minutes_over_itself_is_allowed(api: Api) -> None:
    status, data = await api.put(
        "/api/services/quick",
        {"name": "Quick", "duration_minutes": 30, "interval_minutes": 15, "staff": ["ann"]},
    )
    assert status == 200, data
    old = await book(api, at("10:00"), service="quick")
    status, moved = await api.post(f"/api/bookings/{old['id']}/reschedule", {"start": at("10:15")})
    assert status == 200, moved
    assert moved["start"] == at("10:15") and moved["end"] == at("10:45")
    assert moved["rescheduled_from"] == old["id"]
    status, previous = await api.get(f"/api/bookings/{old['id']}")
    assert previous["status"] == "rescheduled" and previous["rescheduled_to"] == moved["id"]
    free = await starts(api, "quick")
    # 10:00 is free again for a 30-minute booking? No: it would overlap 10:15-10:45.
    assert at("09:45") in free
    assert at("10:00") not in free and at("10:15") not in free and at("10:30") not in free
    assert at("10:45") in free
    status, listed = await api.get("/api/bookings", date_from=DAY, date_to=DAY, status="scheduled")
    assert [b["id"] for b in listed["bookings"]] == [moved["id"]]


async def test_reschedule_a_seat_into_its_own_session_is_allowed(api: Api) -> None:
    # #21 for seated services: moving to the session one already sits in must not count one's own
    # (being released) seat as "already booked".
    mine = await book(api, at("10:00"), service="class")
    await book(api, at("10:00"), service="class", phone=PHONES[1])
    status, moved = await api.post(f"/api/bookings/{mine['id']}/reschedule", {"start": at("10:00")})
    assert status == 200, moved
    assert moved["start"] == at("10:00") and moved["rescheduled_from"] == mine["id"]
    status, avail = await api.get("/api/availability", service="class", date_from=DAY, date_to=DAY, tz="UTC")
    assert [s["seats_left"] for s in avail["slots"] if s["start"] == at("10:00")] == [1]


async def test_reschedule_into_someone_elses_slot_is_409_and_changes_nothing(api: Api) -> None:
    mine = await book(api, at("10:00"), service="solo")
    await book(api, at("11:00"), service="solo", phone=PHONES[1])
    status, data = await api.post(f"/api/bookings/{mine['id']}/reschedule", {"start": at("11:00")})
    assert status == 409, data
    assert data["code"] == "slot_taken"
    status, unchanged = await api.get(f"/api/bookings/{mine['id']}")
    assert unchanged["status"] == "scheduled"
    assert unchanged["start"] == at("10:00") and unchanged["staff"] == "ann"
    assert unchanged["rescheduled_to"] is None
    assert [e["to"] for e in unchanged["history"]] == ["scheduled"]
    # Its slot is still held (the release was rolled back with the failed move).
    assert at("10:00") not in await starts(api, "solo")
    status, listed = await api.get("/api/bookings", date_from=DAY, date_to=DAY)
    assert len(listed["bookings"]) == 2


# --- #23 / #24 cancel --------------------------------------------------------------------------------


async def test_cancel_window_is_inclusive_at_24_hours(api: Api, clock: FrozenClock) -> None:
    booking = await book(api, at("09:00", "2026-03-04"))  # checkup: cancel_notice_hours 24
    clock.now = utc("09:00", "2026-03-03")  # exactly T-24:00:00
    status, data = await api.post(f"/api/bookings/{booking['id']}/cancel", {"reason": "busy"})
    assert status == 200, data
    assert data["status"] == "cancelled" and data["already_cancelled"] is False


async def test_cancel_inside_the_window_is_refused_unless_overridden(api: Api, clock: FrozenClock) -> None:
    booking = await book(api, at("09:00", "2026-03-04"))
    clock.now = datetime(2026, 3, 3, 9, 0, 1, tzinfo=UTC)  # T-23:59:59
    status, data = await api.post(f"/api/bookings/{booking['id']}/cancel", {})
    assert status == 409, data
    assert data["code"] == "policy_violation"
    status, still = await api.get(f"/api/bookings/{booking['id']}")
    assert still["status"] == "scheduled"
    status, data = await api.post(f"/api/bookings/{booking['id']}/cancel", {"override_policy": True})
    assert status == 200, data
    assert data["status"] == "cancelled"


async def test_second_cancel_is_idempotent(api: Api) -> None:
    booking = await book(api, at("10:00"), service="solo")
    status, first = await api.post(f"/api/bookings/{booking['id']}/cancel", {"reason": "ill"})
    assert status == 200 and first["already_cancelled"] is False
    status, second = await api.post(f"/api/bookings/{booking['id']}/cancel", {"reason": "ill"})
    assert status == 200, second
    assert second["already_cancelled"] is True and second["status"] == "cancelled"
    status, fetched = await api.get(f"/api/bookings/{booking['id']}")
    cancelled = [e for e in fetched["history"] if e["to"] == "cancelled"]
    assert len(cancelled) == 1
    assert cancelled[0]["from"] == "scheduled" and cancelled[0]["reason"] == "ill"
    # The slot is free again.
    assert at("10:00") in await starts(api, "solo")


async def test_cancel_unknown_id_is_404(api: Api) -> None:
    status, data = await api.post("/api/bookings/does-not-exist/cancel", {})
    assert status == 404 and data["code"] == "not_found"


async def test_cancel_body_is_validated(api: Api) -> None:
    booking = await book(api, at("10:00"), service="solo")
    status, data = await api.post(f"/api/bookings/{booking['id']}/cancel", {"override_policy": "please"})
    assert status == 422, data
    status, fetched = await api.get(f"/api/bookings/{booking['id']}")
    assert fetched["status"] == "scheduled"


# --- #25 seats ---------------------------------------------------------------------------------------


async def test_seats_fill_up_and_cancelling_frees_one(api: Api) -> None:
    slot = at("10:00")
    ids = []
    for i, phone in enumerate(PHONES[:3]):
        data = await book(api, slot, service="class", phone=phone)
        assert data["staff"] == "bob"
        ids.append(data["id"])
        status, avail = await api.get("/api/availability", service="class", date_from=DAY, date_to=DAY, tz="UTC")
        at_slot = [s for s in avail["slots"] if s["start"] == slot]
        if i < 2:
            assert at_slot and at_slot[0]["seats_left"] == 2 - i, avail
        else:
            assert at_slot == []
    status, data = await api.post("/api/bookings", booking_body(slot, service="class", phone=PHONES[3]))
    assert status == 409, data
    assert data["code"] == "slot_taken"
    status, data = await api.post(f"/api/bookings/{ids[0]}/cancel", {})
    assert status == 200, data
    status, avail = await api.get("/api/availability", service="class", date_from=DAY, date_to=DAY, tz="UTC")
    assert [s["seats_left"] for s in avail["slots"] if s["start"] == slot] == [1]
    await book(api, slot, service="class", phone=PHONES[3])
    status, listed = await api.get("/api/bookings", date_from=DAY, date_to=DAY, status="scheduled")
    assert len(listed["bookings"]) == 3


async def test_availability_shows_seats_left(api: Api) -> None:
    status, avail = await api.get("/api/availability", service="class", date_from=DAY, date_to=DAY, tz="UTC")
    assert status == 200
    assert avail["slots"] and all(s["seats_left"] == 3 for s in avail["slots"])
    # Single-seat services carry no seats_left.
    status, avail = await api.get("/api/availability", service="solo", date_from=DAY, date_to=DAY, tz="UTC")
    assert all("seats_left" not in s for s in avail["slots"])


async def test_same_customer_twice_in_a_class_is_already_booked(api: Api) -> None:
    await book(api, at("11:00"), service="class")
    status, data = await api.post("/api/bookings", booking_body(at("11:00"), service="class"))
    assert status == 409, data
    assert data["code"] == "already_booked"
    status, avail = await api.get("/api/availability", service="class", date_from=DAY, date_to=DAY, tz="UTC")
    assert [s["seats_left"] for s in avail["slots"] if s["start"] == at("11:00")] == [2]
    status, listed = await api.get("/api/bookings", date_from=DAY, date_to=DAY)
    assert len(listed["bookings"]) == 1


# --- one customer, one place at a time ----------------------------------------------------------------


async def test_an_overlapping_booking_of_the_same_customer_is_409_whatever_the_service(api: Api) -> None:
    first = await book(api, at("10:00"), staff="bob")  # a check-up with Bob, 10:00-10:30
    # Ann (and the room) are free at each of these times, the surgery (an hour) only half over it: the customer is not
    for service, start, staff in (("solo", "10:00", None), ("surgery", "10:00", None), ("checkup", "10:00", "ann")):
        status, data = await api.post("/api/bookings", booking_body(at(start), service=service, staff=staff))
        assert status == 409, (service, data)
        assert data["code"] == "overlapping_booking", data
        assert data["error"] == "you already have another booking at that time"
    assert await count_rows(api, t.Appointment) == 1  # nothing of the refused ones was kept
    # back to back is fine, and so is someone else at the same time
    await book(api, at("10:30"), service="solo")
    await book(api, at("10:00"), service="solo", phone=PHONES[1])
    # a cancelled booking does not count
    status, _ = await api.post(f"/api/bookings/{first['id']}/cancel", {"reason": "changed plans"})
    assert status == 200
    await book(api, at("10:00"), staff="bob")


async def test_a_move_onto_another_booking_of_the_same_customer_is_409_and_changes_nothing(api: Api) -> None:
    checkup = await book(api, at("10:00"), staff="bob")
    solo = await book(api, at("11:00"), service="solo")  # with Ann, who is free at 10:00
    status, data = await api.post(f"/api/bookings/{solo['id']}/reschedule", {"start": at("10:00")})
    assert status == 409 and data["code"] == "overlapping_booking", data
    status, unchanged = await api.get(f"/api/bookings/{solo['id']}")
    assert unchanged["status"] == "scheduled" and unchanged["start"] == at("11:00")
    # moving the other one up to it is fine
    status, moved = await api.post(f"/api/bookings/{checkup['id']}/reschedule", {"start": at("10:30")})
    assert status == 200, moved


# --- #27 collective ----------------------------------------------------------------------------------


async def test_collective_needs_everyone_free_and_books_all_or_nothing(api: Api) -> None:
    free = await starts(api, "surgery")
    assert free == [at(f"{h:02d}:00") for h in range(9, 17)]  # ann's hours inside the room's
    status, avail = await api.get("/api/availability", service="surgery", date_from=DAY, date_to=DAY, tz="UTC")
    assert all(s["staff"] == ["ann", "room"] for s in avail["slots"])

    surgery = await book(api, at("09:00"), service="surgery")
    assert surgery["assigned_staff"] == ["ann", "room"]
    assert surgery["end"] == at("10:00")

    # Ann busy on another service at 11:00: the surgery slot disappears...
    await book(api, at("11:00"), service="solo", phone=PHONES[1])
    free = await starts(api, "surgery")
    assert at("11:00") not in free and at("09:00") not in free
    assert at("10:00") in free and at("12:00") in free

    allocations, appointments = await count_rows(api, t.Allocation), await count_rows(api, t.Appointment)
    assert (allocations, appointments) == (3, 2)
    # ...and booking it anyway fails without leaving a row behind (no room allocation alone).
    status, data = await api.post("/api/bookings", booking_body(at("11:00"), service="surgery", phone=PHONES[2]))
    assert status == 409, data
    assert data["code"] == "slot_taken"
    assert (await count_rows(api, t.Allocation), await count_rows(api, t.Appointment)) == (3, 2)


async def test_collective_slot_disappears_when_the_room_is_taken(api: Api) -> None:
    status, data = await api.put(
        "/api/services/room-hire", {"name": "Room hire", "duration_minutes": 60, "staff": ["room"]}
    )
    assert status == 200, data
    await book(api, at("13:00"), service="room-hire")
    free = await starts(api, "surgery")
    assert at("13:00") not in free and at("12:00") in free and at("14:00") in free
    status, data = await api.post("/api/bookings", booking_body(at("13:00"), service="surgery", phone=PHONES[1]))
    assert status == 409 and data["code"] == "slot_taken"
    # Ann stayed free at 13:00.
    assert at("13:00") in await starts(api, "solo")


# --- #30 per-day limit -------------------------------------------------------------------------------


async def test_per_day_limit_moves_to_the_other_staff_then_refuses(
    aiohttp_client: Any, sqlite_url: str, clock: FrozenClock
) -> None:
    api = await custom_api(aiohttp_client, sqlite_url, clock, [demo_business(max_per_day=2)])
    first = await book(api, at("09:00"), staff="ann", phone=PHONES[0])
    await book(api, at("09:30"), staff="ann", phone=PHONES[1])
    # Ann has reached her limit for the day: she is no longer offered...
    status, avail = await api.get("/api/availability", service="checkup", date_from=DAY, date_to=DAY, tz="UTC")
    assert avail["slots"] and all(s["staff"] == ["bob"] for s in avail["slots"])
    status, data = await api.post("/api/bookings", booking_body(at("10:00"), staff="ann", phone=PHONES[2]))
    assert status == 409, data
    # ...so the third booking of the day goes to bob.
    third = await book(api, at("10:00"), phone=PHONES[2])
    assert third["staff"] == "bob"
    await book(api, at("10:30"), phone=PHONES[3])
    # Both full: nothing left that day, the next day is untouched.
    assert await starts(api, "checkup") == []
    assert await starts(api, "checkup", day="2026-03-04")
    status, data = await api.post("/api/bookings", booking_body(at("11:00"), phone=PHONES[4]))
    assert status == 409 and data["code"] == "slot_taken"
    # A cancelled booking does not count.
    status, data = await api.post(f"/api/bookings/{first['id']}/cancel", {"override_policy": True})
    assert status == 200, data
    again = await book(api, at("11:00"), phone=PHONES[4])
    assert again["staff"] == "ann"


# --- #37 idempotency ---------------------------------------------------------------------------------


async def test_same_idempotency_key_returns_the_same_booking(api: Api) -> None:
    body = booking_body(at("09:00"), idempotency_key="msg-123")
    status, first = await api.post("/api/bookings", body)
    assert status == 201, first
    status, second = await api.post("/api/bookings", body)
    assert status == 200, second
    assert second["id"] == first["id"] and second["start"] == first["start"]
    status, listed = await api.get("/api/bookings", date_from=DAY, date_to=DAY)
    assert [b["id"] for b in listed["bookings"]] == [first["id"]]


async def test_same_idempotency_key_with_a_different_start_is_409(api: Api) -> None:
    status, first = await api.post("/api/bookings", booking_body(at("09:00"), idempotency_key="msg-9"))
    assert status == 201
    status, data = await api.post("/api/bookings", booking_body(at("10:00"), idempotency_key="msg-9"))
    assert status == 409, data
    assert data["code"] == "idempotency_mismatch"
    status, listed = await api.get("/api/bookings", date_from=DAY, date_to=DAY)
    assert [b["id"] for b in listed["bookings"]] == [first["id"]]


async def test_idempotency_keys_are_per_business(api: Api, clock: FrozenClock) -> None:
    token = await token_for(api, "other", clock)
    body = {
        "agent": "other-bot",
        "service": "chat",
        "start": "2026-03-03T10:00:00+00:00",
        "customer": {"name": "Olly Customer", "phone": "+447700900123"},
        "idempotency_key": "shared-key",
    }
    status, theirs = await call(api.client, "POST", "/api/bookings", token, json=body)
    assert status == 201, theirs
    status, ours = await api.post("/api/bookings", booking_body(at("15:00"), idempotency_key="shared-key"))
    assert status == 201, ours
    assert ours["id"] != theirs["id"] and ours["service"] == "checkup"


async def test_idempotency_key_repeat_after_the_slot_filled_still_returns_the_booking(api: Api) -> None:
    body = booking_body(at("09:00"), service="solo", idempotency_key="retry-1")
    status, first = await api.post("/api/bookings", body)
    assert status == 201
    # The slot is now taken (by this very booking): the retry must not see "slot taken".
    status, second = await api.post("/api/bookings", body)
    assert status == 200 and second["id"] == first["id"]


# --- lifecycle ---------------------------------------------------------------------------------------


async def test_complete_and_no_show_only_after_the_start(api: Api, clock: FrozenClock) -> None:
    a = await book(api, at("09:00"), staff="ann")
    b = await book(api, at("09:00"), staff="bob", phone=PHONES[1])
    for bid, action in ((a["id"], "complete"), (b["id"], "no-show")):
        status, data = await api.post(f"/api/bookings/{bid}/{action}", {})
        assert status == 409, data
        assert data["code"] == "invalid_transition"
    clock.now = utc("09:05")
    status, done = await api.post(f"/api/bookings/{a['id']}/complete", {})
    assert status == 200, done
    assert done["status"] == "completed" and done["id"] == a["id"]
    status, missed = await api.post(f"/api/bookings/{b['id']}/no-show", {})
    assert status == 200, missed
    assert missed["status"] == "missed"
    # Final states: no cancel, no second completion, no reschedule.
    status, data = await api.post(f"/api/bookings/{a['id']}/cancel", {"override_policy": True})
    assert status == 409 and data["code"] == "invalid_transition"
    status, data = await api.post(f"/api/bookings/{a['id']}/complete", {})
    assert status == 409 and data["code"] == "invalid_transition"
    status, data = await api.post(f"/api/bookings/{b['id']}/reschedule", {"start": at("15:00")})
    assert status == 409 and data["code"] == "invalid_transition"
    status, fetched = await api.get(f"/api/bookings/{a['id']}")
    assert [e["to"] for e in fetched["history"]] == ["scheduled", "completed"]


async def test_cancelled_booking_cannot_be_completed_or_rescheduled(api: Api, clock: FrozenClock) -> None:
    booking = await book(api, at("10:00"), service="solo")
    status, _ = await api.post(f"/api/bookings/{booking['id']}/cancel", {})
    assert status == 200
    clock.now = utc("11:00")
    status, data = await api.post(f"/api/bookings/{booking['id']}/complete", {})
    assert status == 409 and data["code"] == "invalid_transition"
    clock.now = utc("08:00")
    status, data = await api.post(f"/api/bookings/{booking['id']}/reschedule", {"start": at("12:00")})
    assert status == 409 and data["code"] == "invalid_transition"


# --- GET /api/bookings -------------------------------------------------------------------------------


async def test_list_filters_by_dates_and_status(api: Api) -> None:
    tue = await book(api, at("09:00"), service="solo")
    tue_late = await book(api, at("16:30"), service="solo", phone=PHONES[1])
    wed = await book(api, at("09:00", "2026-03-04"), service="solo", phone=PHONES[2])
    status, _ = await api.post(f"/api/bookings/{tue_late['id']}/cancel", {})
    assert status == 200

    async def ids(**params: str) -> list[str]:
        status, data = await api.get("/api/bookings", **params)
        assert status == 200, data
        return [b["id"] for b in data["bookings"]]

    assert await ids(date_from=DAY, date_to=DAY) == [tue["id"], tue_late["id"]]
    assert await ids(date_from="2026-03-04", date_to="2026-03-04") == [wed["id"]]
    assert await ids(date_from=DAY, date_to="2026-03-04") == [tue["id"], tue_late["id"], wed["id"]]
    assert await ids(date_from=DAY, date_to="2026-03-04", status="cancelled") == [tue_late["id"]]
    assert await ids(date_from=DAY, date_to="2026-03-04", status="scheduled") == [tue["id"], wed["id"]]
    assert await ids(date_from="2026-03-05", date_to="2026-03-09") == []


async def test_list_rejects_bad_parameters(api: Api) -> None:
    status, data = await api.get("/api/bookings", date_from=DAY, date_to=DAY, status="bogus")
    assert status == 422 and data["code"] == "invalid_input"
    assert "scheduled" in data["error"]
    status, data = await api.get("/api/bookings", date_to=DAY)
    assert status == 422
    status, data = await api.get("/api/bookings", date_from="2026-03-05", date_to=DAY)
    assert status == 422
    status, data = await api.get("/api/bookings", date_from="03/03/2026", date_to=DAY)
    assert status == 422


# --- alternatives for a reschedule -------------------------------------------------------------------


async def test_reschedule_alternatives_treat_own_slot_as_free(api: Api) -> None:
    mine = await book(api, at("10:00"), service="solo")
    await book(api, at("10:30"), service="solo", phone=PHONES[1])
    status, data = await api.get(f"/api/bookings/{mine['id']}/reschedule/alternatives")
    assert status == 200, data
    assert data["booking"] == mine["id"]
    got = [s["start"] for s in data["slots"]]
    # Nearest 5 to 10:00 among the free slots plus its own: 10:30 (someone else's) is left out.
    assert got == [at("09:00"), at("09:30"), at("10:00"), at("11:00"), at("11:30")]
    assert all(s["staff"] == ["ann"] for s in data["slots"])
    # Nothing free is left out: every slot nearer than the farthest answer is in the answer.
    free = set(await starts(api, "solo")) | {at("10:00")}
    farthest = max(abs(utc(s[11:16]) - utc("10:00")) for s in got)
    nearer = {s for s in free if s.startswith(DAY) and abs(utc(s[11:16]) - utc("10:00")) < farthest}
    assert nearer <= set(got)


async def test_reschedule_alternatives_count_and_around(api: Api) -> None:
    mine = await book(api, at("10:00"), service="solo")
    status, data = await api.get(f"/api/bookings/{mine['id']}/reschedule/alternatives", count="2", around=at("15:00"))
    assert status == 200, data
    assert [s["start"] for s in data["slots"]] == [at("14:30"), at("15:00")]


# --- GET /api/availability ---------------------------------------------------------------------------


async def test_availability_converts_to_the_requested_zone(api: Api) -> None:
    status, data = await api.get(
        "/api/availability", agent="acme-bot", service="solo", date_from=DAY, date_to=DAY, tz="Asia/Kolkata"
    )
    assert status == 200, data
    assert data["timezone"] == "Asia/Kolkata"
    got = [s["start"] for s in data["slots"]]
    assert got and all(s.endswith("+05:30") for s in got)
    # The Kolkata date 2026-03-03 runs from 02 Mar 18:30Z to 03 Mar 18:30Z: all of Tuesday's hours.
    assert got[0] == "2026-03-03T14:30:00+05:30"  # 09:00 UTC
    assert got[-1] == "2026-03-03T22:00:00+05:30"  # 16:30 UTC
    assert len(got) == 16
    assert data["slots"][0]["end"] == "2026-03-03T15:00:00+05:30"


async def test_availability_accepts_zone_aliases(api: Api) -> None:
    status, data = await api.get("/api/availability", service="solo", date_from=DAY, date_to=DAY, tz="Asia/Calcutta")
    assert status == 200, data
    assert data["timezone"] == "Asia/Kolkata"


async def test_availability_unknown_zone_is_422(api: Api) -> None:
    for tz in ("Mars/Olympus", "EST", "GMT+5:30"):
        status, data = await api.get("/api/availability", service="solo", date_from=DAY, date_to=DAY, tz=tz)
        assert status == 422, (tz, data)
        assert data["code"] == "invalid_timezone"


async def test_availability_window_is_limited_to_62_days(api: Api) -> None:
    status, data = await api.get(
        "/api/availability", service="solo", date_from=DAY, date_to="2026-05-03", tz="UTC"
    )  # 62 days inclusive
    assert status == 200, data
    for date_to in ("2026-05-04", "2026-06-30"):  # 63 days, and far more
        status, data = await api.get("/api/availability", service="solo", date_from=DAY, date_to=date_to, tz="UTC")
        assert status == 422, (date_to, data)
        assert data["code"] == "invalid_input"


async def test_availability_rejects_bad_dates_and_unknown_service(api: Api) -> None:
    status, data = await api.get("/api/availability", service="solo", date_from="2026-03-05", date_to=DAY, tz="UTC")
    assert status == 422
    status, data = await api.get("/api/availability", service="solo", date_from="tomorrow", date_to=DAY, tz="UTC")
    assert status == 422
    status, data = await api.get("/api/availability", date_from=DAY, date_to=DAY, tz="UTC")
    assert status == 422  # no service
    status, data = await api.get("/api/availability", service="nope", date_from=DAY, date_to=DAY, tz="UTC")
    assert status == 404 and data["code"] == "not_found"


async def test_holiday_has_no_slots(api: Api) -> None:
    assert await starts(api, "checkup", day="2026-03-06", tz="UTC") == []
    assert await starts(api, "class", day="2026-03-06", tz="UTC") == []
    assert await starts(api, "checkup", day="2026-03-05", tz="UTC")
    status, data = await api.post("/api/bookings", booking_body(at("10:00", "2026-03-06")))
    assert status == 409 and data["code"] == "slot_taken"


async def test_availability_staff_filter(api: Api) -> None:
    await book(api, at("09:00"), staff="ann")
    status, data = await api.get(
        "/api/availability", service="checkup", date_from=DAY, date_to=DAY, tz="UTC", staff="ann"
    )
    assert status == 200, data
    assert all(s["staff"] == ["ann"] for s in data["slots"])
    assert at("09:00") not in [s["start"] for s in data["slots"]]
    status, data = await api.get(
        "/api/availability", service="checkup", date_from=DAY, date_to=DAY, tz="UTC", staff="bob"
    )
    assert data["slots"][0] == {"start": at("09:00"), "end": at("09:30"), "staff": ["bob"]}
    status, data = await api.get("/api/availability", service="checkup", date_from=DAY, date_to=DAY, tz="UTC")
    first = data["slots"][0]
    assert first["start"] == at("09:00") and first["staff"] == ["bob"]
    assert data["slots"][1]["staff"] == ["ann", "bob"]
    status, data = await api.get(
        "/api/availability", service="checkup", date_from=DAY, date_to=DAY, tz="UTC", staff="zed"
    )
    assert status == 422 and data["code"] == "unknown_staff"


async def test_past_slots_are_not_offered(api: Api, clock: FrozenClock) -> None:
    clock.now = utc("12:10")
    got = await starts(api, "solo", tz="UTC")
    assert got[0] == at("12:30")
    status, data = await api.post("/api/bookings", booking_body(at("12:00"), service="solo"))
    assert status == 409 and data["code"] == "min_notice"  # a start in the past is inside any notice
