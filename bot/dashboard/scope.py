"""Who may see which business, and how much of it.

An admin sees every business (``?business=<slug>`` picks one; the first by name otherwise); an
owner sees only their own; a staff member sees only the appointments they are allocated to and
the conversations of customers who have an appointment with them. Asking for another business,
or for an id that belongs to one, answers 404 (no existence oracle); a staff member asking for
an owner's page (grades, charts, alerts) gets 403.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select

from bot.context import context
from bot.dashboard.auth import current
from bot.dashboard.views import Shell
from core.errors import Forbidden, NotFound
from storage import catalog, users
from storage import tables as t


@dataclass(frozen=True, slots=True)
class Scope:
    user: users.User
    csrf: str
    business: catalog.BusinessInfo
    staff_id: str | None  # set for role staff: everything is narrowed to this person
    staff_slug: str | None

    @property
    def tenant_id(self) -> str:
        return self.business.id

    @property
    def actor(self) -> str:
        """How the dashboard user appears in booking history (an id, never an email)."""
        return f"dashboard:{self.user.id}"

    def managers_only(self) -> None:
        if self.user.role == "staff":
            raise Forbidden("this page is for owners and admins")


async def resolve(request: web.Request) -> Scope:
    session = current(request)
    user = session.user
    wanted = request.query.get("business") or None
    async with context(request).db.reading() as db:
        if user.role == "admin":
            if wanted is None:
                wanted = await db.scalar(select(t.Business.slug).order_by(t.Business.name, t.Business.slug).limit(1))
                if wanted is None:
                    raise NotFound("no business is configured")
            business = await catalog.business_by_slug(db, wanted)
        else:
            if user.tenant_id is None:
                raise NotFound("no such business")
            business = await catalog.business_by_id(db, user.tenant_id)
            if wanted is not None and wanted != business.slug:
                raise NotFound("no such business")
        staff_slug = None
        if user.role == "staff":
            staff_slug = await db.scalar(
                select(t.Staff.slug).where(t.Staff.id == user.staff_id, t.Staff.tenant_id == business.id)
            )
            if staff_slug is None:
                raise Forbidden("this login is not linked to a staff member")
    return Scope(user, session.csrf_token, business, user.staff_id if user.role == "staff" else None, staff_slug)


async def shell(request: web.Request, scope: Scope) -> Shell:
    businesses: list[tuple[str, str]] = []
    if scope.user.role == "admin":
        async with context(request).db.reading() as db:
            rows = await db.execute(select(t.Business.slug, t.Business.name).order_by(t.Business.name))
            businesses = [(slug, name) for slug, name in rows]
    return Shell(scope.user.email, scope.user.role, scope.csrf, scope.business.slug, scope.business.name, businesses)
