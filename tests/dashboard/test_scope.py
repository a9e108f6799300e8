"""Who sees what: another business's pages, ids and data answer 404 everywhere (admins reach
them, so the 404 is the scope and not a missing route); staff see only their own bookings and
their customers' conversations and none of the owners' pages."""

from __future__ import annotations

import pytest

from core.booking import Status
from storage import bookings, outbox
from tests.conftest import tenant_of
from tests.dashboard.conftest import Dashboard, World


def pages(w: World) -> list[str]:
    return [
        "/dashboard?business=other",
        "/dashboard/agents/other-bot",
        "/dashboard/agents/other-bot?business=other",
        "/dashboard/comparison?business=other",
        "/dashboard/charts?business=other",
        "/dashboard/conversations?business=other",
        f"/dashboard/conversations/{w.other_escalated}",
        f"/dashboard/conversations/{w.other_escalated}?business=other",
        "/dashboard/handoff?business=other",
        f"/dashboard/handoff/{w.other_escalated}",
        "/dashboard/bookings?business=other",
        "/dashboard/outbox?business=other",
    ]


def data_reads(w: World) -> list[str]:
    return [
        "/dashboard/data/conversations?business=other",
        f"/dashboard/data/conversations/{w.other_escalated}",
        f"/dashboard/data/conversations/{w.other_escalated}?business=other",
        "/dashboard/data/bookings?business=other",
        f"/dashboard/data/bookings/{w.other_booking}/alternatives",
        "/dashboard/data/agents/other-bot/grade",
        "/dashboard/data/agents/other-bot/grade?business=other",
        "/dashboard/data/comparison?business=other",
        "/dashboard/data/charts?business=other",
        "/dashboard/data/charts?agent=other-bot",
        "/dashboard/data/outbox?business=other",
    ]


def data_changes(w: World) -> list[tuple[str, dict[str, object]]]:
    return [
        (f"/dashboard/data/conversations/{w.other_escalated}/reply", {"text": "hi"}),
        (f"/dashboard/data/conversations/{w.other_escalated}/release", {}),
        (f"/dashboard/data/bookings/{w.other_booking}/cancel", {}),
        (f"/dashboard/data/bookings/{w.other_booking}/reschedule", {"start": "2026-03-04T10:00:00+00:00"}),
        (f"/dashboard/data/outbox/{w.other_dead}/replay", {}),
    ]


async def test_every_page_and_endpoint_refuses_another_business(dash: Dashboard, world: World) -> None:
    await dash.login("owner@acme.test")
    for path in pages(world):
        status, body = await dash.get(path)
        assert status == 404, path
        assert "Not found" in body and world.other_escalated not in body
    for path in data_reads(world):
        status, body = await dash.get(path)
        assert (status, body["code"]) == (404, "not_found"), path
    for path, payload in data_changes(world):
        status, body = await dash.post(path, payload)
        assert status == 404, path
    # nothing changed over there
    other = await tenant_of(dash.db, "other")
    assert (await bookings.get(dash.db, other, world.other_booking)).status is Status.SCHEDULED
    assert [row.id for row in await outbox.dead(dash.db, other)] == [world.other_dead]
    await dash.login("owner@other.test")
    status, body = await dash.get(f"/dashboard/data/conversations/{world.other_escalated}")
    assert status == 200 and body["conversation"]["status"] == "escalated"
    assert [m for m in body["messages"] if m["author"] == "human"] == []
    # and the acme lists never mention it
    await dash.login("owner@acme.test")
    _, listed = await dash.get("/dashboard/data/conversations")
    assert world.other_escalated not in {c["id"] for c in listed["conversations"]}
    assert world.acme_escalated in {c["id"] for c in listed["conversations"]}
    _, undelivered = await dash.get("/dashboard/data/outbox")
    assert undelivered["messages"] == []


async def test_an_admin_reaches_every_business(dash: Dashboard, world: World) -> None:
    await dash.login("admin@example.com")
    for path in pages(world)[1:]:
        target = path if "business=" in path else path + ("&" if "?" in path else "?") + "business=other"
        status, _ = await dash.get(target)
        assert status == 200, target
    for path in data_reads(world):
        target = path if "business=" in path else path + ("&" if "?" in path else "?") + "business=other"
        status, _ = await dash.get(target)
        assert status == 200, target
    status, body = await dash.get("/dashboard/conversations")
    assert 'id="business-switch"' in body and '<option value="other"' in body
    resp = await dash.client.get("/dashboard?business=other", allow_redirects=False)
    assert resp.headers["Location"] == "/dashboard/agents/other-bot?business=other"


async def test_an_owner_sees_no_switcher_and_lands_on_the_grade_card(dash: Dashboard, world: World) -> None:
    await dash.login("owner@acme.test")
    status, body = await dash.get("/dashboard/conversations")
    assert status == 200 and "business-switch" not in body
    resp = await dash.client.get("/dashboard", allow_redirects=False)
    assert resp.headers["Location"] == "/dashboard/agents/acme-bot?business=acme"


async def test_staff_see_only_their_own(dash: Dashboard, world: World) -> None:
    await dash.login("ann@acme.test")
    _, listed = await dash.get("/dashboard/data/bookings", date_from="2026-03-02", date_to="2026-03-08")
    assert [b["id"] for b in listed["bookings"]] == [world.ann_booking]
    _, convs = await dash.get("/dashboard/data/conversations")
    assert [c["id"] for c in convs["conversations"]] == [world.acme_with_ann]
    for path in (f"/dashboard/conversations/{world.acme_escalated}", f"/dashboard/handoff/{world.acme_escalated}"):
        assert (await dash.get(path))[0] == 404
    assert (await dash.get(f"/dashboard/data/conversations/{world.acme_escalated}"))[0] == 404
    assert (await dash.post(f"/dashboard/data/bookings/{world.bob_booking}/cancel"))[0] == 404
    for path in ("/dashboard/agents/acme-bot", "/dashboard/comparison", "/dashboard/charts", "/dashboard/outbox"):
        assert (await dash.get(path))[0] == 403, path
    owners_data = ("/dashboard/data/agents/acme-bot/grade", "/dashboard/data/comparison", "/dashboard/data/charts")
    for path in (*owners_data, "/dashboard/data/outbox"):
        assert (await dash.get(path))[0] == 403, path
    resp = await dash.client.get("/dashboard", allow_redirects=False)
    assert resp.headers["Location"] == "/dashboard/conversations?business=acme"
    status, body = await dash.get("/dashboard/bookings")
    assert status == 200 and "Grade card" not in body
    status, cancelled = await dash.post(f"/dashboard/data/bookings/{world.ann_booking}/cancel", {"reason": "ill"})
    assert status == 200 and cancelled["status"] == "cancelled"


async def test_handoff_reply_and_release(dash: Dashboard, world: World) -> None:
    await dash.login("owner@acme.test")
    _, inbox = await dash.get("/dashboard/data/conversations", status="escalated")
    assert [c["id"] for c in inbox["conversations"]] == [world.acme_escalated]
    path = f"/dashboard/data/conversations/{world.acme_escalated}"
    status, stored = await dash.post(f"{path}/reply", {"text": "Hi, this is Sam from the clinic."})
    assert status == 201 and stored["author"] == "human"
    status, _ = await dash.post(f"{path}/release")
    assert status == 200
    _, body = await dash.get(path)
    assert body["conversation"]["status"] == "active"
    assert body["messages"][-1]["text"] == "Hi, this is Sam from the clinic."
    assert (await dash.post(f"{path}/reply", {"text": ""}))[0] == 422


async def test_filters_find_conversations_by_words_and_channel(dash: Dashboard, world: World) -> None:
    await dash.login("owner@acme.test")
    _, found = await dash.get("/dashboard/data/conversations", q="human")
    assert [c["id"] for c in found["conversations"]] == [world.acme_escalated]
    _, none = await dash.get("/dashboard/data/conversations", channel="sms")
    assert none["conversations"] == []
    assert (await dash.get("/dashboard/data/conversations", channel="fax"))[0] == 422


async def test_bookings_cancel_and_reschedule(dash: Dashboard, world: World) -> None:
    await dash.login("owner@acme.test")
    status, alternatives = await dash.get(f"/dashboard/data/bookings/{world.bob_booking}/alternatives")
    assert status == 200 and alternatives["slots"]
    _, listed = await dash.get("/dashboard/data/bookings", date_from="2026-03-01", date_to="2026-03-31")
    (current,) = [b["start"] for b in listed["bookings"] if b["id"] == world.bob_booking]
    assert current not in [s["start"] for s in alternatives["slots"]]  # its own time is not a move
    target = alternatives["slots"][0]["start"]
    status, moved = await dash.post(f"/dashboard/data/bookings/{world.bob_booking}/reschedule", {"start": target})
    assert status == 200 and moved["start"] == target and moved["rescheduled_from"] == world.bob_booking
    status, cancelled = await dash.post(f"/dashboard/data/bookings/{world.ann_booking}/cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    acme = await tenant_of(dash.db, "acme")
    history = await bookings.history(dash.db, acme, world.ann_booking)
    assert history[-1].actor.startswith("dashboard:") and "@" not in history[-1].actor


async def test_grade_card_data(dash: Dashboard, world: World) -> None:
    await dash.login("owner@acme.test")
    status, card = await dash.get("/dashboard/data/agents/acme-bot/grade")
    assert status == 200
    p = card["performance"]
    assert p["performanceGrade"] == "N/A"  # fewer than ten conversations
    assert isinstance(p["strengths"], list) and isinstance(p["improvementAreas"], list)
    assert p["conversationMetrics"]["totalConversations"] >= 2
    assert len(card["trend"]) == 6 and card["trend"][-1]["end"] == "2026-03-02"
    status, compared = await dash.get("/dashboard/data/comparison")
    assert status == 200 and [r["agentSlug"] for r in compared["comparisons"]] == ["acme-bot"]
    status, charts = await dash.get("/dashboard/data/charts")
    assert status == 200 and charts["funnel"][0]["step"] == "conversation_started"
    assert {c["channel"] for c in charts["channels"]} == {"web"}
    assert len(charts["heatmap"]["messages"]) == 7


@pytest.mark.parametrize("business", ["nope", "other"])
async def test_unknown_or_foreign_business_is_404(dash: Dashboard, world: World, business: str) -> None:
    await dash.login("owner@acme.test")
    assert (await dash.get("/dashboard/data/bookings", business=business))[0] == 404
