"""booking.md case 24: self-service cancel/reschedule tokens."""

from __future__ import annotations

import base64

from core.booking import check_manage_token, manage_token
from tests.conftest import Api, booking_body


async def test_token_works_only_for_its_booking_and_purpose(api: Api) -> None:
    _, a = await api.post("/api/bookings", booking_body("2026-03-04T10:00:00+00:00", service="solo"))
    _, b = await api.post(
        "/api/bookings", booking_body("2026-03-04T11:00:00+00:00", service="solo", phone="+14155550111")
    )
    cancel_a, reschedule_a = a["manage_tokens"]["cancel"], a["manage_tokens"]["reschedule"]
    assert len(base64.urlsafe_b64decode(cancel_a + "=")) * 8 >= 128  # unguessable

    client = api.client
    # A's cancel token cannot cancel B, nor reschedule A; a made-up token does nothing.
    for path, body in (
        (f"/manage/bookings/{b['id']}/cancel", {"token": cancel_a}),
        (f"/manage/bookings/{a['id']}/reschedule", {"token": cancel_a, "start": "2026-03-04T12:00:00+00:00"}),
        (f"/manage/bookings/{a['id']}/cancel", {"token": "x" * 43}),
        ("/manage/bookings/no-such-id/cancel", {"token": cancel_a}),
    ):
        resp = await client.post(path, json=body)
        assert resp.status == 403, path
    _, still = await api.get(f"/api/bookings/{b['id']}")
    assert still["status"] == "scheduled"

    resp = await client.post(
        f"/manage/bookings/{a['id']}/reschedule", json={"token": reschedule_a, "start": "2026-03-04T12:00:00+00:00"}
    )
    assert resp.status == 200
    moved = await resp.json()
    assert moved["start"] == "2026-03-04T12:00:00+00:00" and moved["rescheduled_from"] == a["id"]

    resp = await client.post(f"/manage/bookings/{b['id']}/cancel", json={"token": b["manage_tokens"]["cancel"]})
    assert resp.status == 200 and (await resp.json())["status"] == "cancelled"
    again = await client.post(f"/manage/bookings/{b['id']}/cancel", json={"token": b["manage_tokens"]["cancel"]})
    assert again.status == 200 and (await again.json())["already_cancelled"] is True
    _, detail = await api.get(f"/api/bookings/{b['id']}")
    assert [h["to"] for h in detail["history"]].count("cancelled") == 1


def test_tokens_are_bound_to_the_secret() -> None:
    token = manage_token(b"k" * 32, "appt-1", "cancel")
    assert check_manage_token(b"k" * 32, "appt-1", "cancel", token)
    assert not check_manage_token(b"j" * 32, "appt-1", "cancel", token)
    assert not check_manage_token(b"k" * 32, "appt-2", "cancel", token)
    assert not check_manage_token(b"k" * 32, "appt-1", "reschedule", token)
    assert not check_manage_token(b"k" * 32, "appt-1", "delete", token)
