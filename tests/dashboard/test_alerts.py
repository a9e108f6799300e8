"""Alerts on the dashboard: a business sees only its own, acknowledges and silences them, and
tunes its rules; another business's alert is a 404, staff get 403, CSRF is required."""

from __future__ import annotations

from datetime import datetime

from storage import alerts
from storage import tables as t
from storage.engine import Database
from tests.conftest import FrozenClock, tenant_of
from tests.dashboard.conftest import Dashboard


async def firing(db: Database, slug: str, now: datetime, rule: str = "slow_responses") -> str:
    tenant_id = await tenant_of(db, slug)
    async with db.writing() as session:
        row = t.AlertInstance(
            tenant_id=tenant_id,
            fingerprint=f"{slug}-{rule}",
            open_key=f"{slug}-{rule}",
            rule=rule,
            severity="warning",
            scope={"agent": f"{slug}-bot", "channel": "web"},
            state="firing",
            value=95.0,
            threshold=60.0,
            volume=12,
            active_since=now,
            firing_since=now,
            last_true_at=now,
            evaluated_at=now,
        )
        session.add(row)
        await session.flush()
        return row.id


async def test_acknowledge_and_silence_own_alerts_only(dash: Dashboard, clock: FrozenClock) -> None:
    mine = await firing(dash.db, "acme", clock())
    theirs = await firing(dash.db, "other", clock())
    await dash.login("owner@acme.test")
    status, body = await dash.get("/dashboard/data/alerts")
    assert status == 200 and [a["id"] for a in body["alerts"]] == [mine]
    assert body["alerts"][0]["title"] == "Slow responses"
    assert (await dash.post(f"/dashboard/data/alerts/{mine}/acknowledge", csrf=""))[0] == 403
    status, acked = await dash.post(f"/dashboard/data/alerts/{mine}/acknowledge")
    assert status == 200 and acked["acknowledgedBy"].startswith("dashboard:")
    status, made = await dash.post(f"/dashboard/data/alerts/{mine}/silence", {"hours": 2})
    assert status == 201
    _, body = await dash.get("/dashboard/data/alerts")
    assert body["silences"][0]["matchers"] == {"rule": "slow_responses", "agent": "acme-bot", "channel": "web"}
    for path in (f"/dashboard/data/alerts/{theirs}/acknowledge", f"/dashboard/data/alerts/{theirs}/silence"):
        assert (await dash.post(path))[0] == 404
    other = await tenant_of(dash.db, "other")
    assert (await alerts.list_alerts(dash.db, other))[0].acknowledged_at is None
    assert await alerts.silences(dash.db, other, clock()) == []
    assert (await dash.post(f"/dashboard/data/silences/{made['id']}/expire"))[0] == 200
    for path in ("/dashboard/alerts?business=other", "/dashboard/alerts/rules?business=other"):
        assert (await dash.get(path))[0] == 404
    for path in ("/dashboard/data/alerts?business=other", "/dashboard/data/alert-rules?business=other"):
        assert (await dash.get(path))[0] == 404


async def test_rule_settings_per_business(dash: Dashboard) -> None:
    await dash.login("owner@acme.test")
    status, body = await dash.get("/dashboard/data/alert-rules")
    assert status == 200 and "slow_responses" in {r["rule"] for r in body["rules"]}
    status, body = await dash.post("/dashboard/data/alert-rules/slow_responses", {"threshold": 90, "enabled": False})
    assert status == 200
    tuned = next(r for r in body["rules"] if r["rule"] == "slow_responses")
    assert tuned["threshold"] == 90 and tuned["enabled"] is False and tuned["overridden"] == ["enabled", "threshold"]
    assert (await dash.post("/dashboard/data/alert-rules/slow_responses", {"threshold": -1}))[0] == 422
    assert (await dash.post("/dashboard/data/alert-rules/nope", {"threshold": 1}))[0] == 422
    await dash.login("owner@other.test")
    _, theirs = await dash.get("/dashboard/data/alert-rules")
    assert next(r for r in theirs["rules"] if r["rule"] == "slow_responses")["overridden"] == []


async def test_staff_cannot_see_alerts(dash: Dashboard) -> None:
    await dash.login("ann@acme.test")
    paths = ("/dashboard/alerts", "/dashboard/alerts/rules", "/dashboard/data/alerts", "/dashboard/data/alert-rules")
    for path in paths:
        assert (await dash.get(path))[0] == 403, path
