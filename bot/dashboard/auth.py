"""Dashboard login, logout and the session middleware guarding ``/dashboard``.

Every ``/dashboard`` request except the login page and static files needs a live session (the
``fd_session`` cookie: HttpOnly, SameSite=Lax (Strict for admins), Secure behind https). Every change (any method
but GET/HEAD) must also carry the session's CSRF token: the ``X-CSRF-Token`` header for fetch
calls, a ``csrf`` form field for forms. The login form, which has no session yet, is protected by
a double-submit token (a cookie and the same value in a hidden field).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import quote

from aiohttp import web

from bot.context import context
from bot.dashboard import views
from bot.http import Handler
from core.errors import Forbidden, FrontdeskError, TooManyRequests, Unauthorized
from storage import users

routes = web.RouteTableDef()
SESSION_COOKIE = "fd_session"
LOGIN_COOKIE = "fd_login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
LOGIN_PATH = "/dashboard/login"
STATIC_PREFIX = "/dashboard/static/"
DATA_PREFIX = "/dashboard/data/"
SESSION = web.RequestKey("dashboard_session", users.Session)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def policy(request: web.Request) -> users.Policy:
    d = context(request).settings.dashboard
    return users.Policy(
        idle=timedelta(minutes=d.session_idle_minutes),
        absolute=timedelta(hours=d.session_hours),
        window=timedelta(minutes=d.login_window_minutes),
        per_account=d.login_failures_per_account,
        per_ip=d.login_failures_per_ip,
    )


def current(request: web.Request) -> users.Session:
    return request[SESSION]


def _secure(request: web.Request) -> bool:
    return request.secure or context(request).settings.server.public_url.startswith("https://")


def _guarded(path: str) -> bool:
    if path != "/dashboard" and not path.startswith("/dashboard/"):
        return False
    return path != LOGIN_PATH and not path.startswith(STATIC_PREFIX)


@web.middleware
async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the session, check CSRF on changes, and answer page errors as HTML."""
    if not request.path.startswith("/dashboard"):
        return await handler(request)
    if _guarded(request.path):
        ctx = context(request)
        async with ctx.db.writing() as session:
            found = await users.resume(session, request.cookies.get(SESSION_COOKIE, ""), ctx.clock(), policy(request))
        if found is None:
            if request.method in SAFE_METHODS and not request.path.startswith(DATA_PREFIX):
                raise web.HTTPSeeOther(f"{LOGIN_PATH}?next={quote(request.path_qs, safe='')}")
            raise Unauthorized("log in to the dashboard first")
        if request.method not in SAFE_METHODS:
            presented = request.headers.get(CSRF_HEADER)
            if presented is None and request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                field = (await request.post()).get(CSRF_FIELD)
                presented = field if isinstance(field, str) else None
            if not users.check_csrf(found.csrf_token, presented):
                raise Forbidden("missing or wrong CSRF token", code="csrf")
        request[SESSION] = found
    try:
        response = await handler(request)
    except FrontdeskError as exc:
        if request.method in SAFE_METHODS and not request.path.startswith(DATA_PREFIX):
            response = views.error_page(exc.status, exc.message)
        else:
            raise
    views.harden(response)
    return response


# ----- login and logout ----------------------------------------------------------------------
def _safe_next(value: str | None) -> str:
    """Only back into the dashboard: never an open redirect."""
    if value and value.startswith("/dashboard") and not value.startswith("//") and "\\" not in value:
        return value
    return "/dashboard"


@routes.get(LOGIN_PATH)
async def login_page(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = views.login_page(token, _safe_next(request.query.get("next")))
    _set_login_cookie(request, response, token)
    return response


def _set_login_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE, token, path=LOGIN_PATH, httponly=True, samesite="Strict", secure=_secure(request), max_age=3600
    )


@routes.post(LOGIN_PATH)
async def login(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    form = await request.post()
    token = request.cookies.get(LOGIN_COOKIE, "")
    target = _safe_next(str(form.get("next", "")))
    if not token or not users.check_csrf(token, str(form.get(CSRF_FIELD, ""))):
        return views.login_page(token or secrets.token_urlsafe(32), target, "Your login form expired: try again.", 403)
    try:
        user = await users.authenticate(
            ctx.db,
            str(form.get("email", "")),
            str(form.get("password", "")),
            request.remote or "unknown",
            ctx.clock(),
            policy(request),
        )
    except TooManyRequests:
        return views.login_page(token, target, "Too many failed logins. Try again later.", 429)
    except Unauthorized:
        return views.login_page(token, target, "Wrong email or password.", 401)
    async with ctx.db.writing() as session:
        raw = await users.start_session(
            session, user, ctx.clock(), policy(request), replacing=request.cookies.get(SESSION_COOKIE)
        )
    response = views.redirect(target)
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        path="/dashboard",
        httponly=True,
        samesite="Strict" if user.role == "admin" else "Lax",  # an admin's session never rides a cross-site link
        secure=_secure(request),
        max_age=int(policy(request).absolute.total_seconds()),
    )
    response.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return response


@routes.post("/dashboard/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    async with ctx.db.writing() as session:
        await users.end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    response = views.redirect(LOGIN_PATH)
    response.del_cookie(SESSION_COOKIE, path="/dashboard")
    return response
