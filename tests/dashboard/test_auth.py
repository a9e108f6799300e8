"""Logins, sessions and CSRF: argon2id hashes (re-hashed when parameters change), session ids
rotated on login and expiring, every change refused without the session's CSRF token, and the
login rate limit per account and per address."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from argon2 import PasswordHasher
from sqlalchemy import select, update

from core.errors import TooManyRequests, Unauthorized
from storage import tables as t
from storage import users
from storage.engine import Database
from tests.conftest import FrozenClock
from tests.dashboard.conftest import PASSWORD, Dashboard, World, make_user

POLICY = users.Policy()


async def stored_hash(db: Database, email: str) -> str:
    async with db.reading() as session:
        found = await session.scalar(select(t.User.password_hash).where(t.User.email == email))
    assert found is not None
    return found


async def test_password_is_argon2id_and_never_stored_plain(db: Database, clock: FrozenClock) -> None:
    await make_user(db, "Owner@Acme.test ", "owner", clock(), "acme")
    digest = await stored_hash(db, "owner@acme.test")
    assert digest.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PASSWORD not in digest
    user = await users.authenticate(db, "OWNER@acme.test", PASSWORD, "10.0.0.1", clock(), POLICY)
    assert user.email == "owner@acme.test" and user.role == "owner"


async def test_outdated_hash_is_upgraded_on_login(db: Database, clock: FrozenClock) -> None:
    await make_user(db, "o@acme.test", "owner", clock(), "acme")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    async with db.writing() as session:
        await session.execute(update(t.User).where(t.User.email == "o@acme.test").values(password_hash=weak))
    await users.authenticate(db, "o@acme.test", PASSWORD, "10.0.0.1", clock(), POLICY)
    upgraded = await stored_hash(db, "o@acme.test")
    assert upgraded != weak and upgraded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    await users.authenticate(db, "o@acme.test", PASSWORD, "10.0.0.1", clock(), POLICY)  # still the same password


async def test_wrong_password_and_unknown_email_look_the_same(db: Database, clock: FrozenClock) -> None:
    await make_user(db, "o@acme.test", "owner", clock(), "acme")
    messages = []
    for email, password in [("o@acme.test", "wrong password!"), ("nobody@acme.test", PASSWORD)]:
        try:
            await users.authenticate(db, email, password, "10.0.0.1", clock(), POLICY)
        except Unauthorized as exc:
            messages.append(exc.message)
    assert messages == ["wrong email or password"] * 2


async def test_rate_limit_per_account_then_window_passes(db: Database, clock: FrozenClock) -> None:
    await make_user(db, "o@acme.test", "owner", clock(), "acme")
    policy = users.Policy(per_account=3, per_ip=100)
    for n in range(3):
        with contextlib.suppress(Unauthorized):
            await users.authenticate(db, "o@acme.test", "bad guess!!", f"10.0.0.{n}", clock(), policy)
    try:  # the right password no longer helps inside the window
        await users.authenticate(db, "o@acme.test", PASSWORD, "10.0.0.9", clock(), policy)
        raise AssertionError("not limited")
    except TooManyRequests:
        pass
    clock.advance(minutes=16)
    assert (await users.authenticate(db, "o@acme.test", PASSWORD, "10.0.0.9", clock(), policy)).email == "o@acme.test"


async def test_rate_limit_per_address(db: Database, clock: FrozenClock) -> None:
    await make_user(db, "o@acme.test", "owner", clock(), "acme")
    policy = users.Policy(per_account=100, per_ip=2)
    for email in ("a@x.test", "b@x.test"):
        with contextlib.suppress(Unauthorized):
            await users.authenticate(db, email, "bad guess!!", "10.9.9.9", clock(), policy)
    try:
        await users.authenticate(db, "o@acme.test", PASSWORD, "10.9.9.9", clock(), policy)
        raise AssertionError("not limited")
    except TooManyRequests:
        pass
    await users.authenticate(db, "o@acme.test", PASSWORD, "10.1.1.1", clock(), policy)  # another address is fine


async def test_sessions_idle_and_absolute_expiry(db: Database, clock: FrozenClock) -> None:
    user = await make_user(db, "o@acme.test", "owner", clock(), "acme")
    policy = users.Policy()
    async with db.writing() as session:
        raw = await users.start_session(session, user, clock(), policy)
    async with db.reading() as session:
        row = await session.scalar(select(t.DashboardSession))
    assert row is not None and raw not in (row.id_hash, row.csrf_token)  # only the hash is kept
    for _ in range(30):  # active use keeps it alive up to the absolute limit
        clock.advance(minutes=25)
        async with db.writing() as session:
            alive = await users.resume(session, raw, clock(), policy)
        if alive is None:
            break
    assert alive is None and policy.absolute <= clock() - row.created_at < policy.absolute + timedelta(minutes=25)
    async with db.writing() as session:
        assert await users.resume(session, raw, clock(), policy) is None
    async with db.writing() as session:
        second = await users.start_session(session, user, clock(), policy)
    clock.advance(minutes=31)
    async with db.writing() as session:
        assert await users.resume(session, second, clock(), policy) is None  # idle too long


# ----- over HTTP ---------------------------------------------------------------------------------
async def test_login_sets_a_hardened_cookie_and_rotates_the_id(dash: Dashboard) -> None:
    resp = await dash.login("owner@acme.test")
    header = resp.headers.getall("Set-Cookie")
    session_cookie = next(h for h in header if h.startswith("fd_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie and "Path=/dashboard" in session_cookie
    assert resp.headers["Location"] == "/dashboard/conversations"
    first = dash.session_cookie()
    assert first is not None
    await dash.login("owner@acme.test", fresh=False)  # logging in again with the old cookie present
    second = dash.session_cookie()
    assert second is not None and second != first
    dash.client.session.cookie_jar.clear()
    dash.client.session.cookie_jar.update_cookies({"fd_session": first})
    status, _ = await dash.get("/dashboard/data/conversations")
    assert status == 401  # the old id died with the rotation
    admin = await dash.login("admin@example.com")
    assert "SameSite=Strict" in next(h for h in admin.headers.getall("Set-Cookie") if h.startswith("fd_session="))


async def test_pages_need_a_session(dash: Dashboard) -> None:
    status, _ = await dash.get("/dashboard/bookings")
    assert status == 303
    status, body = await dash.get("/dashboard/data/bookings")
    assert status == 401 and body["code"] == "unauthorized"
    status, _ = await dash.get("/dashboard/static/dashboard.js")
    assert status == 200


async def test_session_expires_when_idle(dash: Dashboard, clock: FrozenClock) -> None:
    await dash.login("owner@acme.test")
    clock.advance(minutes=29)
    assert (await dash.get("/dashboard/data/conversations"))[0] == 200
    clock.advance(minutes=31)
    assert (await dash.get("/dashboard/data/conversations"))[0] == 401


async def test_logout_ends_the_session(dash: Dashboard) -> None:
    await dash.login("owner@acme.test")
    raw = dash.session_cookie()
    resp = await dash.client.post("/dashboard/logout", data={"csrf": dash.csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard/login"
    dash.client.session.cookie_jar.update_cookies({"fd_session": raw or ""})
    assert (await dash.get("/dashboard/data/conversations"))[0] == 401


async def test_logout_without_csrf_is_refused(dash: Dashboard) -> None:
    await dash.login("owner@acme.test")
    resp = await dash.client.post("/dashboard/logout", data={}, allow_redirects=False)
    assert resp.status == 403
    assert (await dash.get("/dashboard/data/conversations"))[0] == 200


async def test_changes_without_the_csrf_token_change_nothing(dash: Dashboard, world: World) -> None:
    await dash.login("owner@acme.test")
    conv = world.acme_escalated
    for token in ("", "wrong-token"):
        status, body = await dash.post(f"/dashboard/data/conversations/{conv}/reply", {"text": "hi"}, csrf=token)
        assert status == 403 and body["code"] == "csrf"
        status, _ = await dash.post(f"/dashboard/data/conversations/{conv}/release", csrf=token)
        assert status == 403
        status, _ = await dash.post(f"/dashboard/data/bookings/{world.ann_booking}/cancel", csrf=token)
        assert status == 403
    status, body = await dash.get(f"/dashboard/data/conversations/{conv}")
    assert body["conversation"]["status"] == "escalated"
    assert not [m for m in body["messages"] if m["author"] == "human"]
    status, body = await dash.get("/dashboard/data/bookings", date_from="2026-03-03", date_to="2026-03-03")
    assert {b["status"] for b in body["bookings"]} == {"scheduled"}
    # with the token it works
    status, _ = await dash.post(f"/dashboard/data/conversations/{conv}/reply", {"text": "Hello from Sam"})
    assert status == 201


async def test_login_form_needs_its_token(dash: Dashboard) -> None:
    await dash.login_form()
    resp = await dash.client.post(
        "/dashboard/login",
        data={"email": "owner@acme.test", "password": PASSWORD, "csrf": "forged"},
        allow_redirects=False,
    )
    assert resp.status == 403 and dash.session_cookie() is None


async def test_login_rate_limit_over_http(dash: Dashboard, clock: FrozenClock) -> None:
    for _ in range(5):
        await dash.login("owner@acme.test", "not the password", expect=401)
    resp = await dash.login("owner@acme.test", expect=429)
    assert "Too many failed logins" in await resp.text()
    clock.advance(minutes=16)
    await dash.login("owner@acme.test")


async def test_next_never_leaves_the_dashboard(dash: Dashboard) -> None:
    token = await dash.login_form()
    resp = await dash.client.post(
        "/dashboard/login",
        data={"email": "owner@acme.test", "password": PASSWORD, "csrf": token, "next": "//evil.example/x"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard"


async def test_dashboard_pages_send_a_strict_csp(dash: Dashboard) -> None:
    await dash.login("owner@acme.test")
    resp = await dash.client.get("/dashboard/conversations")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["Cache-Control"] == "no-store"
