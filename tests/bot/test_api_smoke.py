from __future__ import annotations

from tests.conftest import Api, booking_body


async def test_availability_then_book_then_slot_is_gone(api: Api) -> None:
    status, data = await api.get(
        "/api/availability", agent="acme-bot", service="solo", date_from="2026-03-03", date_to="2026-03-03", tz="UTC"
    )
    assert status == 200, data
    starts = [s["start"] for s in data["slots"]]
    assert starts[0] == "2026-03-03T09:00:00+00:00" and starts[-1] == "2026-03-03T16:30:00+00:00"
    status, booked = await api.post("/api/bookings", booking_body("2026-03-03T09:00:00+00:00", service="solo"))
    assert status == 201, booked
    assert booked["staff"] == "ann" and booked["status"] == "scheduled"
    status, data = await api.get(
        "/api/availability", service="solo", date_from="2026-03-03", date_to="2026-03-03", tz="UTC"
    )
    assert "2026-03-03T09:00:00+00:00" not in [s["start"] for s in data["slots"]]
    status, again = await api.post("/api/bookings", booking_body("2026-03-03T09:00:00+00:00", service="solo"))
    assert status == 409 and again["code"] == "slot_taken"
    assert again["alternatives"], again
