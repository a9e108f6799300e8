"""Catalogue management through the real HTTP API: staff, services, holidays, date overrides and
time off, each checked by what availability and booking do afterwards, and scoped to the token's
business."""

from __future__ import annotations

from typing import Any

from bot.context import CONTEXT
from tests.conftest import Api, FrozenClock, booking_body, new_token

DAY = "2026-03-03"  # a Tuesday: ann and bob work 09:00-17:00 UTC
ALL_DAY = [f"{DAY}T{h:02d}:{m:02d}:00+00:00" for h in range(9, 17) for m in (0, 30)]


def at(hhmm: str, day: str = DAY) -> str:
    return f"{day}T{hhmm}:00+00:00"


async def slots(api: Api, service: str = "solo", day: str = DAY, **params: str) -> list[dict[str, Any]]:
    status, data = await api.get("/api/availability", service=service, date_from=day, date_to=day, tz="UTC", **params)
    assert status == 200, data
    return data["slots"]


async def starts(api: Api, service: str = "solo", day: str = DAY, **params: str) -> list[str]:
    return [s["start"] for s in await slots(api, service, day, **params)]


class Other:
    """The "other" business's token against the same server."""

    def __init__(self, api: Api, token: str) -> None:
        self.api, self.token = api, token

    async def call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        resp = await self.api.client.request(method, path, json=json, headers={"Authorization": f"Bearer {self.token}"})
        return resp.status, (await resp.json()) if resp.status != 204 else None


async def other(api: Api, clock: FrozenClock) -> Other:
    return Other(api, await new_token(api.client.server.app[CONTEXT].db, "other", clock))


# --- date overrides ---------------------------------------------------------------------------------


async def test_override_replaces_the_day_and_delete_restores_it(api: Api) -> None:
    assert await starts(api) == ALL_DAY
    status, data = await api.put(f"/api/staff/ann/overrides/{DAY}", {"hours": ["12:00-14:00"]})
    assert status == 200, data
    assert data == {"date": DAY, "hours": ["12:00-14:00"]}
    # Replaces, does not merge: only 12-14.
    assert await starts(api) == [at("12:00"), at("12:30"), at("13:00"), at("13:30")]
    # Other days and other staff are untouched.
    assert await starts(api, day="2026-03-04") == [s.replace(DAY, "2026-03-04") for s in ALL_DAY]
    assert await starts(api, "checkup", staff="bob") == ALL_DAY
    status, listed = await api.get("/api/staff/ann/overrides")
    assert status == 200 and listed == {"overrides": [{"date": DAY, "hours": ["12:00-14:00"]}]}
    # A booking outside the override is refused, inside it is accepted.
    status, data = await api.post("/api/bookings", booking_body(at("09:00"), service="solo"))
    assert status == 409 and data["code"] == "slot_taken"
    status, data = await api.post("/api/bookings", booking_body(at("12:30"), service="solo"))
    assert status == 201, data

    assert await api.delete(f"/api/staff/ann/overrides/{DAY}") == 204
    restored = await starts(api)
    assert restored == [s for s in ALL_DAY if s != at("12:30")]
    assert await api.delete(f"/api/staff/ann/overrides/{DAY}") == 404
    status, listed = await api.get("/api/staff/ann/overrides")
    assert listed == {"overrides": []}


async def test_empty_override_closes_the_day(api: Api) -> None:
    status, data = await api.put(f"/api/staff/ann/overrides/{DAY}", {"hours": []})
    assert status == 200, data
    assert await starts(api) == []
    # The collective surgery needs ann, so it is gone too; bob still works.
    assert await starts(api, "surgery") == []
    assert await starts(api, "checkup") == ALL_DAY
    assert all(s["staff"] == ["bob"] for s in await slots(api, "checkup"))


async def test_override_can_open_a_closed_day(api: Api) -> None:
    saturday = "2026-03-07"
    assert await starts(api, day=saturday) == []
    status, data = await api.put(f"/api/staff/ann/overrides/{saturday}", {"hours": ["10:00-11:00"]})
    assert status == 200, data
    assert await starts(api, day=saturday) == [at("10:00", saturday), at("10:30", saturday)]


async def test_override_with_a_second_put_replaces_the_first(api: Api) -> None:
    await api.put(f"/api/staff/ann/overrides/{DAY}", {"hours": ["12:00-14:00"]})
    status, _ = await api.put(f"/api/staff/ann/overrides/{DAY}", {"hours": ["15:00-16:00"]})
    assert status == 200
    assert await starts(api) == [at("15:00"), at("15:30")]
    status, listed = await api.get("/api/staff/ann/overrides")
    assert listed == {"overrides": [{"date": DAY, "hours": ["15:00-16:00"]}]}


async def test_override_input_is_validated(api: Api) -> None:
    for body in ({"hours": ["25:00-26:00"]}, {"hours": ["9-17"]}, {"hours": "09:00-10:00"}, {}):
        status, data = await api.put(f"/api/staff/ann/overrides/{DAY}", body)
        assert status == 422, (body, data)
        assert data["code"] == "invalid_input"
    status, data = await api.put("/api/staff/ann/overrides/not-a-date", {"hours": []})
    assert status == 422, data
    status, data = await api.put(f"/api/staff/nobody/overrides/{DAY}", {"hours": []})
    assert status == 404, data
    assert await starts(api) == ALL_DAY


# --- holidays ---------------------------------------------------------------------------------------


async def test_holiday_removes_the_day_and_delete_restores_it(api: Api) -> None:
    status, data = await api.put(f"/api/holidays/{DAY}", {"name": "Spring clean"})
    assert status == 200, data
    assert data == {"date": DAY, "name": "Spring clean"}
    for service in ("solo", "checkup", "class", "surgery"):
        assert await starts(api, service) == [], service
    status, data = await api.post("/api/bookings", booking_body(at("10:00")))
    assert status == 409, data
    status, listed = await api.get("/api/holidays")
    assert status == 200
    assert listed == {
        "holidays": [{"date": DAY, "name": "Spring clean"}, {"date": "2026-03-06", "name": "Founders day"}]
    }
    assert await api.delete(f"/api/holidays/{DAY}") == 204
    assert await starts(api) == ALL_DAY
    assert await api.delete(f"/api/holidays/{DAY}") == 404


async def test_deleting_the_configured_holiday_opens_the_day(api: Api) -> None:
    assert await starts(api, day="2026-03-06") == []
    assert await api.delete("/api/holidays/2026-03-06") == 204
    assert len(await starts(api, day="2026-03-06")) == 16


async def test_holiday_put_is_idempotent_and_validated(api: Api) -> None:
    await api.put(f"/api/holidays/{DAY}", {"name": "A"})
    status, _ = await api.put(f"/api/holidays/{DAY}", {"name": "B"})
    assert status == 200
    status, listed = await api.get("/api/holidays")
    assert [h for h in listed["holidays"] if h["date"] == DAY] == [{"date": DAY, "name": "B"}]
    status, data = await api.put("/api/holidays/2026-13-01", {})
    assert status == 422, data
    status, data = await api.put(f"/api/holidays/{DAY}", {"name": "x", "extra": True})
    assert status == 422, data


# --- time off ---------------------------------------------------------------------------------------


async def test_time_off_blocks_its_range_and_can_be_deleted(api: Api) -> None:
    resp = await api.client.post(
        "/api/staff/ann/time-off",
        json={"start": f"{DAY}T10:00:00", "end": f"{DAY}T12:00:00", "reason": "dentist"},
        headers=api.headers(),
    )
    assert resp.status == 201
    created = await resp.json()
    assert created["reason"] == "dentist" and created["id"]
    got = await starts(api)
    assert at("09:30") in got and at("12:00") in got
    assert not {at("10:00"), at("10:30"), at("11:00"), at("11:30")} & set(got)
    status, data = await api.post("/api/bookings", booking_body(at("11:00"), service="solo"))
    assert status == 409 and data["code"] == "slot_taken"
    # Bob is not affected.
    assert await starts(api, "checkup", staff="bob") == ALL_DAY

    status, listed = await api.get("/api/staff/ann/time-off")
    assert status == 200
    assert [(o["id"], o["reason"]) for o in listed["time_off"]] == [(created["id"], "dentist")]
    assert await api.delete(f"/api/staff/ann/time-off/{created['id']}") == 204
    assert await starts(api) == ALL_DAY
    status, listed = await api.get("/api/staff/ann/time-off")
    assert listed == {"time_off": []}
    assert await api.delete(f"/api/staff/ann/time-off/{created['id']}") == 404


async def test_time_off_with_offsets_and_across_days(api: Api) -> None:
    status, created = await api.post(
        "/api/staff/ann/time-off",
        {"start": f"{DAY}T20:30:00+05:30", "end": "2026-03-04T10:00:00+00:00"},  # from 15:00 UTC
    )
    assert status == 201, created
    got = await starts(api)
    assert got[-1] == at("14:30")
    assert await starts(api, day="2026-03-04") == [
        at(f"{h:02d}:{m:02d}", "2026-03-04") for h in range(10, 17) for m in (0, 30)
    ]


async def test_time_off_input_is_validated(api: Api) -> None:
    for body in (
        {"start": f"{DAY}T12:00:00", "end": f"{DAY}T10:00:00"},
        {"start": f"{DAY}T10:00:00+00:00", "end": f"{DAY}T12:00:00"},
        {"start": "soon", "end": f"{DAY}T12:00:00"},
        {"start": f"{DAY}T10:00:00"},
    ):
        status, data = await api.post("/api/staff/ann/time-off", body)
        assert status == 422, (body, data)
    status, data = await api.post("/api/staff/nobody/time-off", {"start": f"{DAY}T10:00", "end": f"{DAY}T11:00"})
    assert status == 404, data
    assert await starts(api) == ALL_DAY


# --- services ---------------------------------------------------------------------------------------


async def test_new_service_is_listed_offered_and_bookable(api: Api) -> None:
    body = {"name": "Massage", "duration_minutes": 45, "price": 7000, "staff": ["bob"]}
    status, data = await api.put("/api/services/massage", body)
    assert status == 200, data
    assert data["slug"] == "massage" and data["duration_minutes"] == 45 and data["staff"] == ["bob"]
    status, listed = await api.get("/api/services")
    assert status == 200
    assert [s["slug"] for s in listed["services"]] == ["checkup", "class", "massage", "solo", "surgery"]
    got = await starts(api, "massage")
    assert got[:3] == [at("09:00"), at("09:45"), at("10:30")]
    assert got[-1] == at("15:45")  # 16:30 would end after 17:00
    status, booked = await api.post("/api/bookings", booking_body(at("09:45"), service="massage"))
    assert status == 201, booked
    assert booked["staff"] == "bob" and booked["end"] == at("10:30")
    assert booked["price"] == 7000 and booked["currency"] == "EUR"
    # The massage blocks bob for the other services he gives.
    assert at("10:00") not in await starts(api, "checkup", staff="bob")


async def test_service_upsert_changes_an_existing_service(api: Api) -> None:
    status, data = await api.put("/api/services/solo", {"name": "Solo", "duration_minutes": 60, "staff": ["ann"]})
    assert status == 200, data
    got = await starts(api, "solo")
    assert got == [at(f"{h:02d}:00") for h in range(9, 17)]
    status, listed = await api.get("/api/services")
    assert [s["duration_minutes"] for s in listed["services"] if s["slug"] == "solo"] == [60]


async def test_invalid_service_is_422_and_not_stored(api: Api) -> None:
    base = {"name": "Bad", "duration_minutes": 30, "staff": ["ann"]}
    for body in (
        {**base, "min_notice_minutes": 3 * 1440, "max_advance_days": 1},  # notice longer than the window
        {**base, "staff": ["zed"]},  # "other"'s staff member
        {**base, "staff": ["nobody"]},
        {**base, "staff": []},
        {**base, "duration_minutes": 0},
        {**base, "capacity": 3, "assignment": "collective", "staff": ["ann", "room"]},
        {**base, "assignment": "sometimes"},
        {"duration_minutes": 30, "staff": ["ann"]},  # no name
        {**base, "colour": "red"},
    ):
        status, data = await api.put("/api/services/bad", body)
        assert status == 422, (body, data)
        assert data["code"] == "invalid_input"
    status, data = await api.put("/api/services/Bad Slug", base)
    assert status == 422, data
    status, listed = await api.get("/api/services")
    assert "bad" not in [s["slug"] for s in listed["services"]]
    status, data = await api.get("/api/availability", service="bad", date_from=DAY, date_to=DAY, tz="UTC")
    assert status == 404


async def test_deleted_service_is_no_longer_offered(api: Api) -> None:
    assert await api.delete("/api/services/solo") == 204
    status, data = await api.get("/api/availability", service="solo", date_from=DAY, date_to=DAY, tz="UTC")
    assert status == 404, data
    status, data = await api.post("/api/bookings", booking_body(at("09:00"), service="solo"))
    assert status == 404, data
    status, listed = await api.get("/api/services")
    assert "solo" not in [s["slug"] for s in listed["services"]]
    assert await api.delete("/api/services/solo") == 404


# --- staff ------------------------------------------------------------------------------------------


async def test_staff_upsert_creates_then_updates(api: Api) -> None:
    status, data = await api.put("/api/staff/cat", {"name": "Cat", "hours": {"tue": ["09:00-11:00"]}, "weight": 3})
    assert status == 200, data
    assert data["slug"] == "cat" and data["name"] == "Cat" and data["weight"] == 3 and data["kind"] == "person"
    status, data = await api.put("/api/staff/cat", {"name": "Catherine", "hours": {"tue": ["14:00-15:00"]}})
    assert status == 200, data
    assert data["name"] == "Catherine" and data["weight"] == 1
    status, listed = await api.get("/api/staff")
    assert status == 200
    assert [s["slug"] for s in listed["staff"]] == ["ann", "bob", "cat", "room"]
    assert [s["name"] for s in listed["staff"] if s["slug"] == "cat"] == ["Catherine"]
    # Cat can be given a service and is then offered with her latest hours.
    status, data = await api.put("/api/services/nails", {"name": "Nails", "duration_minutes": 30, "staff": ["cat"]})
    assert status == 200, data
    assert await starts(api, "nails") == [at("14:00"), at("14:30")]
    status, booked = await api.post("/api/bookings", booking_body(at("14:30"), service="nails"))
    assert status == 201 and booked["staff"] == "cat"


async def test_staff_input_is_validated(api: Api) -> None:
    for slug, body in (
        ("cat", {"name": "Cat", "weight": 0}),
        ("cat", {"name": "Cat", "hours": {"tue": ["9am-5pm"]}}),
        ("cat", {"name": "Cat", "hours": {"someday": ["09:00-10:00"]}}),
        ("cat", {"name": "Cat", "timezone": "Mars/Olympus"}),
        ("cat", {"name": "Cat", "kind": "robot"}),
        ("cat", {"hours": {}}),
        ("Not_A_Slug", {"name": "Cat"}),
    ):
        status, data = await api.put(f"/api/staff/{slug}", body)
        assert status == 422, (slug, body, data)
    status, listed = await api.get("/api/staff")
    assert [s["slug"] for s in listed["staff"]] == ["ann", "bob", "room"]


async def test_deleted_staff_is_no_longer_offered(api: Api) -> None:
    assert await api.delete("/api/staff/bob") == 204
    got = await slots(api, "checkup")
    assert got and all(s["staff"] == ["ann"] for s in got)
    assert await starts(api, "class") == []  # bob was the only teacher
    status, data = await api.post("/api/bookings", booking_body(at("09:00"), staff="bob"))
    assert status == 422 and data["code"] == "unknown_staff"
    status, booked = await api.post("/api/bookings", booking_body(at("09:00")))
    assert status == 201 and booked["staff"] == "ann"
    status, listed = await api.get("/api/staff")
    assert [s["slug"] for s in listed["staff"]] == ["ann", "room"]
    assert await api.delete("/api/staff/nobody") == 404
    # Put back: offered again.
    status, _ = await api.put("/api/staff/bob", {"name": "Bob", "hours": {"tue": ["09:00-17:00"]}})
    assert status == 200
    assert [s["staff"] for s in await slots(api, "checkup")][1] == ["ann", "bob"]


async def test_business_answers_the_tokens_business(api: Api, clock: FrozenClock) -> None:
    status, data = await api.get("/api/business")
    assert status == 200, data
    assert data["slug"] == "acme" and data["name"] == "Acme Clinic"
    assert data["timezone"] == "UTC" and data["currency"] == "EUR"
    o = await other(api, clock)
    status, data = await o.call("GET", "/api/business")
    assert status == 200
    assert data["slug"] == "other" and data["timezone"] == "Europe/London" and data["currency"] == "GBP"


async def test_catalogue_needs_a_token(api: Api) -> None:
    for method, path in (
        ("GET", "/api/business"),
        ("GET", "/api/staff"),
        ("PUT", "/api/staff/cat"),
        ("DELETE", "/api/staff/ann"),
        ("PUT", f"/api/holidays/{DAY}"),
        ("PUT", "/api/services/x"),
    ):
        resp = await api.client.request(method, path, json={"name": "x"})
        assert resp.status == 401, (method, path)
        assert (await resp.json())["code"] == "unauthorized"
    _, listed = await api.get("/api/staff")
    assert [s["slug"] for s in listed["staff"]] == ["ann", "bob", "room"]


# --- tenant scoping ---------------------------------------------------------------------------------


async def test_other_business_cannot_see_or_touch_acme_catalogue(api: Api, clock: FrozenClock) -> None:
    status, off = await api.post("/api/staff/ann/time-off", {"start": f"{DAY}T10:00", "end": f"{DAY}T11:00"})
    assert status == 201
    await api.put(f"/api/staff/ann/overrides/{DAY}", {"hours": ["09:00-12:00"]})
    o = await other(api, clock)

    status, data = await o.call("GET", "/api/staff")
    assert status == 200 and [s["slug"] for s in data["staff"]] == ["zed"]
    status, data = await o.call("GET", "/api/services")
    assert [s["slug"] for s in data["services"]] == ["chat"]
    status, data = await o.call("GET", "/api/holidays")
    assert data == {"holidays": []}
    for method, path, body in (
        ("GET", "/api/staff/ann/overrides", None),
        ("PUT", f"/api/staff/ann/overrides/{DAY}", {"hours": []}),
        ("DELETE", f"/api/staff/ann/overrides/{DAY}", None),
        ("GET", "/api/staff/ann/time-off", None),
        ("POST", "/api/staff/ann/time-off", {"start": f"{DAY}T12:00", "end": f"{DAY}T13:00"}),
        ("DELETE", f"/api/staff/ann/time-off/{off['id']}", None),
        ("DELETE", "/api/staff/ann", None),
        ("DELETE", "/api/services/solo", None),
        ("DELETE", "/api/holidays/2026-03-06", None),
        ("GET", f"/api/availability?service=solo&date_from={DAY}&date_to={DAY}&tz=UTC", None),
    ):
        status, data = await o.call(method, path, body)
        assert status == 404, (method, path, data)
    # acme is unchanged.
    status, listed = await api.get("/api/staff/ann/overrides")
    assert listed == {"overrides": [{"date": DAY, "hours": ["09:00-12:00"]}]}
    status, listed = await api.get("/api/staff/ann/time-off")
    assert [o["id"] for o in listed["time_off"]] == [off["id"]]
    assert await starts(api) == [at("09:00"), at("09:30"), at("11:00"), at("11:30")]
    assert await starts(api, day="2026-03-06") == []
    status, listed = await api.get("/api/services")
    assert "solo" in [s["slug"] for s in listed["services"]]


async def test_other_business_cannot_reference_acme_staff(api: Api, clock: FrozenClock) -> None:
    o = await other(api, clock)
    status, data = await o.call("PUT", "/api/services/steal", {"name": "x", "duration_minutes": 30, "staff": ["ann"]})
    assert status == 422, data
    # A staff member of the same slug in "other" is its own, separate person.
    status, data = await o.call("PUT", "/api/staff/ann", {"name": "Other Ann", "hours": {"daily": ["09:00-10:00"]}})
    assert status == 200, data
    status, listed = await api.get("/api/staff")
    assert [s["name"] for s in listed["staff"] if s["slug"] == "ann"] == ["Ann"]
    assert await starts(api) == ALL_DAY
