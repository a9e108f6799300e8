"""The dashboard (``/dashboard``): owners, staff and admins reviewing grades, conversations and
bookings, answering handed-off chats and handling alerts. See docs/dashboard.md."""

from __future__ import annotations

from aiohttp import web

from bot.dashboard import alerting, auth, data, grades, pages


def install(app: web.Application) -> None:
    """Add the routes and the session middleware (innermost, so the error middleware sees its errors)."""
    app.middlewares.append(auth.sessions)
    app.router.add_routes(auth.routes)
    app.router.add_routes(pages.routes)
    app.router.add_routes(data.routes)
    app.router.add_routes(grades.routes)
    app.router.add_routes(alerting.routes)
