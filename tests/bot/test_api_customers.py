from __future__ import annotations

from tests.conftest import Api, booking_body


async def test_customers_are_created_found_by_phone_and_updated(api: Api) -> None:
    status, made = await api.post(
        "/api/customers", {"phone": "+1 415-555-0199", "name": "Sam", "timezone": "Asia/Calcutta"}
    )
    assert status == 201 and made["phone"] == "+14155550199" and made["timezone"] == "Asia/Kolkata"
    status, found = await api.get("/api/customers", phone="+14155550199")
    assert [c["id"] for c in found["customers"]] == [made["id"]]
    resp = await api.client.patch(f"/api/customers/{made['id']}", json={"name": "Samira"}, headers=api.headers())
    assert resp.status == 200 and (await resp.json())["name"] == "Samira"
    status, err = await api.post("/api/customers", {"phone": "not a phone"})
    assert status == 422 and err["code"] == "invalid_phone"


async def test_booking_reuses_the_customer_with_the_same_phone(api: Api) -> None:
    _, first = await api.post(
        "/api/bookings", booking_body("2026-03-03T09:00:00+00:00", service="solo", phone="+14155550123")
    )
    _, second = await api.post(
        "/api/bookings", booking_body("2026-03-03T10:00:00+00:00", service="solo", phone="+1 (415) 555-0123")
    )
    assert first["customer"]["id"] == second["customer"]["id"]


async def test_customers_of_another_business_are_not_found(api: Api, client: object) -> None:
    from bot.context import CONTEXT
    from tests.conftest import new_token

    _, made = await api.post("/api/customers", {"phone": "+14155550177", "name": "Kim"})
    database = api.client.server.app[CONTEXT].db
    other = await new_token(database, "other", api.client.server.app[CONTEXT].clock)  # type: ignore[arg-type]
    resp = await api.client.get(f"/api/customers/{made['id']}", headers=api.headers(other))
    assert resp.status == 404
