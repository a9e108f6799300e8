"""The customer's booking page behind a manage link (bot/selfservice.py, bot/links.py): what it
shows, cancelling and moving through its HTML forms on a real SQLite file, bad and expired links,
refusals with the business's phone number, and the links the confirmations and reminders carry."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import JOBS, create_app
from bot.context import CONTEXT
from bot.dialogue.desk import ref_of
from bot.dialogue.manager import Incoming
from bot.links import LINK_DAYS, ManageLinks, Verdict
from bot.payments.routes import PAYMENTS
from bot.settings import Settings
from storage import tables as t
from tests.conftest import T0, Api, FrozenClock, booking_body, demo_business, make_settings, new_token

PHONE = "+14155550100"
ADDRESS = "12 <b>Main</b> St & Sons"
WED_10 = "2026-03-04T10:00:00+05:30"  # Wednesday, in the business's zone (04:30 UTC)


def shop() -> dict[str, Any]:
    """The demo business in Kolkata, with a phone, an address and names that need escaping."""
    business = demo_business()
    business.update(name='Acme <Clinic> & "Co"', timezone="Asia/Kolkata", address=ADDRESS, phone=PHONE)
    business["staff"][0]["name"] = "Ann <i>O'Neil</i>"
    business["services"][1]["name"] = "Solo <script>alert(1)</script>"
    return business


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url, [shop()], scheduler={"enabled": False})


@pytest_asyncio.fixture
async def api(client: TestClient, clock: FrozenClock) -> Api:
    return Api(client, await new_token(client.server.app[CONTEXT].db, "acme", clock))


class Page(HTMLParser):
    """The forms of a page: each one's action and fields (hidden inputs, a select's options)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.links: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a["action"], "fields": {}, "options": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag == "option" and self.forms:
            self.forms[-1]["options"].append(a["value"])
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])

    def form(self, action: str) -> dict[str, Any]:
        return next(f for f in self.forms if f["fields"].get("action") == action)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def book(api: Api, start: str = WED_10, service: str = "solo") -> dict[str, Any]:
    status, data = await api.post("/api/bookings", booking_body(start, service=service))
    assert status == 201, data
    assert data["manage_url"].startswith("http://localhost:8080/manage/bookings/")
    return data


async def open_page(client: TestClient, path: str, status: int = 200) -> tuple[str, Page]:
    resp = await client.get(path)
    text = await resp.text()
    assert resp.status == status, text
    assert resp.headers["Content-Type"].startswith("text/html")
    return text, Page(text)


async def post(client: TestClient, form: dict[str, Any], **fields: str) -> tuple[int, str]:
    resp = await client.post(form["action"], data={**form["fields"], **fields})
    return resp.status, await resp.text()


async def test_the_page_shows_the_booking_in_the_business_zone_and_escapes_every_text(
    client: TestClient, api: Api
) -> None:
    booked = await book(api)
    resp = await client.get(path_of(booked["manage_url"]))
    html = await resp.text()
    assert resp.status == 200
    for fact in (
        "Solo &lt;script&gt;alert(1)&lt;/script&gt;",
        "Ann &lt;i&gt;O&#x27;Neil&lt;/i&gt;",
        "Wednesday 4 March 2026",  # the date with its weekday
        "10:00 AM – 10:30 AM IST (Asia/Kolkata)",  # the time in the business's zone, named
        "12 &lt;b&gt;Main&lt;/b&gt; St &amp; Sons",
        f"<dd>{ref_of(booked['id'])}</dd>",
        "<dd>Confirmed</dd>",
        "Acme &lt;Clinic&gt; &amp; &quot;Co&quot;",
        f'<a href="tel:{PHONE}">{PHONE}</a>',
    ):
        assert fact in html, fact
    assert "<script>" not in html and "<i>" not in html and "<b>Main" not in html
    assert resp.headers["Referrer-Policy"] == "same-origin"  # the form's POST carries a real Origin
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store"
    page = Page(html)
    assert {f["fields"]["action"] for f in page.forms} == {"cancel", "move"}
    css = await client.get("/dashboard/static/dashboard.css")  # the dashboard's look, no login needed
    assert css.status == 200 and "body.manage" in await css.text()


async def test_cancel_through_the_form(client: TestClient, api: Api) -> None:
    booked = await book(api)
    _, page = await open_page(client, path_of(booked["manage_url"]))
    status, html = await post(client, page.form("cancel"))
    assert status == 200 and "Your booking is cancelled." in html and "<dd>Cancelled</dd>" in html
    assert not Page(html).forms  # nothing left to do
    _, detail = await api.get(f"/api/bookings/{booked['id']}")
    assert detail["status"] == "cancelled"
    assert [h["actor"] for h in detail["history"] if h["to"] == "cancelled"] == ["customer"]

    # The same form again (a second tab): said in words, with whom to call, never a 500.
    status, html = await post(client, page.form("cancel"))
    assert status == 409
    assert "This booking is cancelled, so it can&#x27;t be changed." in html
    assert f'Questions? Call Acme &lt;Clinic&gt; &amp; &quot;Co&quot; on <a href="tel:{PHONE}">' in html


async def test_move_through_the_form_and_the_new_link_works_the_old_one_points_to_it(
    client: TestClient, api: Api
) -> None:
    booked = await book(api)
    old_path = path_of(booked["manage_url"])
    _, page = await open_page(client, old_path)
    move = page.form("move")
    new_start = "2026-03-04T12:00:00+05:30"
    assert new_start in move["options"] and WED_10 not in move["options"]  # its own time is not offered
    status, html = await post(client, move, start=new_start)
    assert status == 200, html
    assert "Your booking has been moved." in html and "12:00 PM – 12:30 PM IST" in html
    _, detail = await api.get(f"/api/bookings/{booked['id']}")
    new_id = detail["rescheduled_to"]
    assert detail["status"] == "rescheduled" and new_id

    # The new booking's page has forms with its own token: a second move works from it.
    moved_page = Page(html)
    assert moved_page.form("move")["action"] == f"/manage/bookings/{new_id}"
    new_token = moved_page.form("move")["fields"]["t"]
    assert new_token != move["fields"]["t"]

    # The old link says where the booking went, and links to the new booking's page.
    html, old = await open_page(client, old_path)
    assert "This booking was moved to Wednesday 4 March 2026, 12:00 PM IST." in html
    (onward,) = [href for href in old.links if href.startswith("/manage/")]
    assert onward.startswith(f"/manage/bookings/{new_id}?t=")
    assert not old.forms
    # The old page's forms (still open in a tab) do nothing to either booking.
    status, html = await post(client, page.form("cancel"))
    assert status == 409 and "This booking was moved" in html
    _, again = await api.get(f"/api/bookings/{new_id}")
    assert again["status"] == "scheduled"

    # Following the old link onward, the new booking can be cancelled.
    _, current = await open_page(client, onward.replace("&amp;", "&"))
    status, html = await post(client, current.form("cancel"))
    assert status == 200 and "Your booking is cancelled." in html
    _, gone = await api.get(f"/api/bookings/{new_id}")
    assert gone["status"] == "cancelled"


async def test_a_taken_time_is_said_and_other_times_offered(client: TestClient, api: Api) -> None:
    booked = await book(api)
    _, page = await open_page(client, path_of(booked["manage_url"]))
    taken = "2026-03-04T12:00:00+05:30"
    await book(api, taken)  # someone else takes it after the page was shown
    status, html = await post(client, page.form("move"), start=taken)
    assert status == 409 and "That time was taken a moment ago" in html
    assert taken not in Page(html).form("move")["options"]
    status, html = await post(client, page.form("move"), start="not a time")
    assert status == 422 and "Please pick another one." in html


async def test_tampered_wrong_and_expired_links_get_a_clear_403_page(
    client: TestClient, api: Api, clock: FrozenClock
) -> None:
    booked, other = await book(api), await book(api, "2026-03-04T11:00:00+05:30")
    path = path_of(booked["manage_url"])
    token = path.split("?t=", 1)[1]
    stamp, mac = token.split(".")
    tampered = [
        path.replace(mac, ("A" if mac[0] != "A" else "B") + mac[1:]),
        path.replace(f"t={stamp}", f"t={int(stamp) + 86400}"),  # a longer life is not ours to give
        f"/manage/bookings/{other['id']}?t={token}",  # another booking's link
        f"/manage/bookings/{booked['id']}",
        f"/manage/bookings/no-such-id?t={token}",
    ]
    for bad in tampered:
        html, page = await open_page(client, bad, 403)
        assert "This link isn&#x27;t valid." in html, bad
        assert "Solo" not in html and PHONE not in html and not page.forms  # it names nothing
        resp = await client.post(bad.split("?")[0], data={"t": bad.partition("t=")[2], "action": "cancel"})
        assert resp.status == 403
    for booking in (booked, other):
        _, detail = await api.get(f"/api/bookings/{booking['id']}")
        assert detail["status"] == "scheduled"

    _, page = await open_page(client, path)
    clock.now = T0 + timedelta(days=2 + LINK_DAYS)  # past the appointment's end + LINK_DAYS
    html, _ = await open_page(client, path, 403)
    assert "This link has expired." in html and PHONE in html
    status, html = await post(client, page.form("cancel"))
    assert status == 403 and "This link has expired." in html


def test_link_tokens_are_bound_to_booking_secret_and_time() -> None:
    links = ManageLinks(b"k" * 32, "https://desk.example/")
    end = T0 + timedelta(days=1)
    token = links.token("appt-1", end)
    assert links.url("appt-1", end) == f"https://desk.example/manage/bookings/appt-1?t={token}"
    assert links.check("appt-1", token, T0) is Verdict.OK
    assert links.check("appt-2", token, T0) is Verdict.BAD
    assert ManageLinks(b"j" * 32, "").check("appt-1", token, T0) is Verdict.BAD
    assert links.check("appt-1", token, end + timedelta(days=LINK_DAYS)) is Verdict.EXPIRED
    for junk in ("", ".", "x.y", "1.", token + "x", "9" * 13 + "." + token.split(".")[1], "é" * 40):
        assert links.check("appt-1", junk, T0) is Verdict.BAD


async def test_a_form_posted_from_another_site_is_refused(client: TestClient, api: Api) -> None:
    booked = await book(api)
    _, page = await open_page(client, path_of(booked["manage_url"]))
    form = page.form("cancel")
    for origin in ("https://evil.example", "null"):
        resp = await client.post(form["action"], data=form["fields"], headers={"Origin": origin})
        assert resp.status == 403 and "another website" in await resp.text()
    _, detail = await api.get(f"/api/bookings/{booked['id']}")
    assert detail["status"] == "scheduled"
    own = str(client.make_url("")).rstrip("/")
    resp = await client.post(form["action"], data=form["fields"], headers={"Origin": own})
    assert resp.status == 200 and "Your booking is cancelled." in await resp.text()


async def test_inside_the_notice_window_the_page_says_whom_to_call(
    client: TestClient, api: Api, clock: FrozenClock
) -> None:
    # The check-up needs 24 h notice to cancel (and is priced: what cancelling means is said).
    soon = (T0 + timedelta(hours=26)).isoformat()
    booked = await book(api, soon, service="checkup")
    html, page = await open_page(client, path_of(booked["manage_url"]))
    assert "Nothing has been paid for this booking" in html  # the refund policy's word, unpaid
    cancel = page.form("cancel")
    clock.advance(hours=3)  # now 23 h before: too late to cancel online, moving is still allowed
    html, page = await open_page(client, path_of(booked["manage_url"]))
    assert "so it can&#x27;t be cancelled online any more" in html and "less than 24 hours" in html
    assert f'To change it, call Acme &lt;Clinic&gt; &amp; &quot;Co&quot; on <a href="tel:{PHONE}">' in html
    assert [f["fields"]["action"] for f in page.forms] == ["move"]
    status, html = await post(client, cancel)  # the form from before, sent anyway
    assert status == 409 and "less than 24 hours" in html and PHONE in html
    # The JSON route refuses in the same words.
    resp = await client.post(
        f"/manage/bookings/{booked['id']}/cancel", json={"token": booked["manage_tokens"]["cancel"]}
    )
    body = await resp.json()
    assert resp.status == 409 and body["code"] == "policy_violation"
    assert "less than 24 hours" in body["error"] and PHONE in body["error"] and body["contact_phone"] == PHONE

    clock.now = T0 + timedelta(hours=26, minutes=5)  # it has started
    html, page = await open_page(client, path_of(booked["manage_url"]))
    assert "already started" in html and PHONE in html and not page.forms
    status, html = await post(client, cancel)
    assert status == 409 and "already started" in html
    _, detail = await api.get(f"/api/bookings/{booked['id']}")
    assert detail["status"] == "scheduled"


async def test_json_move_answers_the_new_booking_tokens_and_the_old_ones_say_where_it_went(
    client: TestClient, api: Api
) -> None:
    booked = await book(api)
    resp = await client.post(
        f"/manage/bookings/{booked['id']}/reschedule",
        json={"token": booked["manage_tokens"]["reschedule"], "start": "2026-03-04T12:00:00+05:30"},
    )
    moved = await resp.json()
    assert resp.status == 200 and moved["rescheduled_from"] == booked["id"]
    assert set(moved["manage_tokens"]) == {"cancel", "reschedule"}
    for purpose in ("cancel", "reschedule"):
        resp = await client.post(
            f"/manage/bookings/{booked['id']}/{purpose}",
            json={"token": booked["manage_tokens"][purpose], "start": "2026-03-04T13:00:00+05:30"},
        )
        body = await resp.json()
        assert resp.status == 409 and body["code"] == "moved" and "cannot become" not in body["error"]
        assert body["rescheduled_to"] == moved["id"] and body["manage_url"].startswith(
            f"http://localhost:8080/manage/bookings/{moved['id']}?t="
        )
    await open_page(client, path_of(moved["manage_url"]))
    resp = await client.post(f"/manage/bookings/{moved['id']}/cancel", json={"token": moved["manage_tokens"]["cancel"]})
    assert resp.status == 200 and (await resp.json())["status"] == "cancelled"


# ----- the links the customer gets -----------------------------------------------------------------


async def chat(client: TestClient, text: str) -> list[Any]:
    result = await client.app[CONTEXT].dialogue.handle(Incoming("acme-bot", "web", "v1", text=text))
    return [r.message for r in result.replies]


async def book_in_chat(client: TestClient, wish: str = "book a solo tomorrow at 10am") -> list[Any]:
    for text in (wish, "yes", "Ravi Kumar"):
        await chat(client, text)
    return await chat(client, "+447700900123")


async def only_appointment(client: TestClient) -> t.Appointment:
    async with client.app[CONTEXT].db.reading() as session:
        rows = list(await session.scalars(select(t.Appointment).where(t.Appointment.status == "scheduled")))
    assert len(rows) == 1
    return rows[0]


async def system_messages(client: TestClient) -> list[Any]:
    dialogue = client.app[CONTEXT].dialogue
    conversation = await dialogue.conversation_for("acme-bot", "web", "v1")
    assert conversation is not None
    return [m for m in await dialogue.messages(conversation) if m.author == "system"]


async def test_the_chat_confirmation_links_to_the_booking_page(client: TestClient) -> None:
    replies = await book_in_chat(client)
    (booked,) = [r for r in replies if r.text.startswith("You're booked!")]
    appointment = await only_appointment(client)
    assert f"Your reference is {ref_of(appointment.id)}." in booked.text
    assert f"Where: {ADDRESS}." in booked.text
    assert booked.link is not None and booked.link.label == "Change or cancel your booking"
    html, page = await open_page(client, path_of(booked.link.url))
    assert "Tuesday 3 March 2026" in html and f"<dd>{ref_of(appointment.id)}</dd>" in html
    assert page.form("cancel")["action"] == f"/manage/bookings/{appointment.id}"

    # Moved in the chat, the new confirmation carries the new booking's link.
    for text in ("move my booking to wednesday at 11am", "yes"):
        replies = await chat(client, text)
    (moved,) = [r for r in replies if r.text.startswith("Done — your")]
    new = await only_appointment(client)
    assert new.id != appointment.id and moved.link is not None and new.id in moved.link.url
    html, _ = await open_page(client, path_of(moved.link.url))
    assert "Wednesday 4 March 2026" in html and "11:00 AM" in html
    html, _ = await open_page(client, path_of(booked.link.url))  # the first link: moved, and where
    assert "This booking was moved to Wednesday 4 March 2026, 11:00 AM IST." in html


async def test_the_automated_confirmation_and_the_reminder_carry_reference_address_and_link(
    client: TestClient, clock: FrozenClock
) -> None:
    await book_in_chat(client)
    appointment = await only_appointment(client)
    jobs = client.app[JOBS]
    assert await jobs.automations_run() == 1
    clock.now = appointment.starts_at - timedelta(hours=1)  # the 1 h reminder (the 24 h one was past)
    report = await jobs.reminders()
    assert report.sent == 1
    confirmation, reminder = await system_messages(client)
    assert confirmation.text.startswith("Hi Ravi Kumar, your Solo")
    assert reminder.text.startswith("Reminder: your Solo")
    for message in (confirmation, reminder):
        assert ref_of(appointment.id) in message.text
        assert "Where: 12 <b>Main</b> St & Sons." in message.text
        (url,) = [w for w in message.text.split() if "/manage/bookings/" in w]
        assert message.text.split(url)[0].endswith("Change or cancel your booking: ")
        html, page = await open_page(client, path_of(url))
        assert f"<dd>{ref_of(appointment.id)}</dd>" in html
        assert page.form("cancel")["action"] == f"/manage/bookings/{appointment.id}"
    assert confirmation.payload["link"]["label"] == "Add to calendar"  # the calendar file stays


async def test_the_payment_confirmation_links_to_the_booking_page(client: TestClient) -> None:
    replies = await book_in_chat(client, "book a check-up with Ann on thursday at 10am")
    pay = next(r.link for r in replies if r.link is not None)
    assert pay.label.startswith("Pay")  # held: no manage link before it is paid
    resp = await client.post(path_of(pay.url).rstrip("?"), data={"action": "pay"})
    assert resp.status in (200, 303)
    await client.app[PAYMENTS].drain()
    appointment = await only_appointment(client)
    dialogue = client.app[CONTEXT].dialogue
    conversation = await dialogue.conversation_for("acme-bot", "web", "v1")
    assert conversation is not None
    last = (await dialogue.messages(conversation))[-1]
    assert "Payment of" in last.text and f"Your reference is {ref_of(appointment.id)}." in last.text
    assert f"Where: {ADDRESS}." in last.text
    html, page = await open_page(client, path_of(last.payload["link"]["url"]))
    assert "<dd>Confirmed</dd>" in html and "€50.00" in html
    assert "full refund of €50.00" in html  # paid: what cancelling now gives back
    status, html = await post(client, page.form("cancel"))
    assert status == 200 and "Your booking is cancelled." in html
    await client.app[PAYMENTS].drain()
    async with client.app[CONTEXT].db.reading() as session:
        purchase = await session.scalar(select(t.Purchase))
    assert purchase is not None and purchase.refund_status in ("requested", "succeeded")


async def test_links_follow_the_public_url(aiohttp_client: Any, sqlite_url: str) -> None:
    """The link follows ``server.public_url`` (here with a path prefix and a trailing slash)."""
    settings = make_settings(
        sqlite_url, [shop()], scheduler={"enabled": False}, server={"public_url": "https://desk.example/fd/"}
    )
    client = await aiohttp_client(create_app(settings, clock=FrozenClock(T0)))
    token = await new_token(client.server.app[CONTEXT].db, "acme", FrozenClock(T0))
    resp = await client.post(
        "/api/bookings", json=booking_body(WED_10, service="solo"), headers={"Authorization": f"Bearer {token}"}
    )
    data = await resp.json()
    assert data["manage_url"].startswith(f"https://desk.example/fd/manage/bookings/{data['id']}?t=")
