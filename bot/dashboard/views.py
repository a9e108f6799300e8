"""The dashboard's HTML: the login page, error pages and the page shell the script fills in.

Everything interpolated here goes through :func:`html.escape`; customer text never does, because
it only ever arrives as JSON and is inserted by the script with ``textContent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode

from aiohttp import web

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def harden(response: web.StreamResponse) -> None:
    """Security headers on every dashboard answer (static files keep their own caching)."""
    for name, value in HEADERS.items():
        if name not in response.headers:
            response.headers[name] = value


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _head(title: str, *scripts: str, csrf: str | None = None) -> str:
    tags = "".join(f'\n  <script src="{escape(s)}" defer></script>' for s in scripts)
    if csrf is not None:
        tags = f'\n  <meta name="csrf-token" content="{escape(csrf)}">' + tags
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" href="data:,">
  <title>{escape(title)} · frontdesk</title>
  <link rel="stylesheet" href="/dashboard/static/dashboard.css">{tags}
</head>"""


def login_page(token: str, target: str, problem: str = "", status: int = 200) -> web.Response:
    alert = f'\n    <p class="problem" role="alert">{escape(problem)}</p>' if problem else ""
    return _html(
        f"""{_head("Log in")}
<body class="login">
  <main>
    <h1>frontdesk dashboard</h1>{alert}
    <form method="post" action="/dashboard/login">
      <input type="hidden" name="csrf" value="{escape(token)}">
      <input type="hidden" name="next" value="{escape(target)}">
      <label for="email">Email</label>
      <input id="email" name="email" type="email" autocomplete="username" required>
      <label for="password">Password</label>
      <input id="password" name="password" type="password" autocomplete="current-password" required>
      <button type="submit">Log in</button>
    </form>
  </main>
</body>
</html>
""",
        status,
    )


def error_page(status: int, message: str) -> web.Response:
    title = {401: "Not logged in", 403: "Not allowed", 404: "Not found"}.get(status, "Something went wrong")
    return _html(
        f"""{_head(title)}
<body class="login">
  <main>
    <h1>{escape(title)}</h1>
    <p>{escape(message)}</p>
    <p><a href="/dashboard">Back to the dashboard</a></p>
  </main>
</body>
</html>
""",
        status,
    )


@dataclass(frozen=True, slots=True)
class Shell:
    """What the page shell needs to know about who is looking at which business."""

    email: str
    role: str
    csrf: str
    business: str  # slug
    business_name: str
    businesses: list[tuple[str, str]]  # (slug, name): the admin's switcher; empty for others


NAV_ALL = [
    ("grade", "/dashboard", "Grade card"),
    ("comparison", "/dashboard/comparison", "Comparison"),
    ("conversations", "/dashboard/conversations", "Conversations"),
    ("handoff", "/dashboard/handoff", "Hand-off inbox"),
    ("bookings", "/dashboard/bookings", "Bookings"),
    ("charts", "/dashboard/charts", "Charts"),
    ("outbox", "/dashboard/outbox", "Failed deliveries"),
    ("alerts", "/dashboard/alerts", "Alerts"),
    ("rules", "/dashboard/alerts/rules", "Alert rules"),
]
STAFF_PAGES = frozenset({"conversations", "handoff", "bookings"})


def page(shell: Shell, name: str, title: str, *, charts: bool = False, **data: str) -> web.Response:
    """The shell for one page; ``data`` lands in ``data-*`` attributes the script reads."""
    query = "?" + urlencode({"business": shell.business})
    links = []
    for key, href, label in NAV_ALL:
        if shell.role == "staff" and key not in STAFF_PAGES:
            continue
        here = ' aria-current="page"' if key == name or (name == "conversation" and key == "conversations") else ""
        links.append(f'<a href="{escape(href + query)}"{here}>{escape(label)}</a>')
    switcher = ""
    if shell.businesses:
        options = "".join(
            f'<option value="{escape(slug)}"{" selected" if slug == shell.business else ""}>{escape(label)}</option>'
            for slug, label in shell.businesses
        )
        switcher = f'\n    <label class="switch">Business <select id="business-switch">{options}</select></label>'
    attrs = "".join(f' data-{escape(k.replace("_", "-"))}="{escape(v)}"' for k, v in sorted(data.items()))
    scripts = ["/dashboard/static/vendor/chart.umd.min.js"] if charts else []
    scripts.append("/dashboard/static/dashboard.js")
    return _html(
        f"""{_head(title, *scripts, csrf=shell.csrf)}
<body>
  <header class="top">
    <a class="brand" href="{escape("/dashboard" + query)}">frontdesk · {escape(shell.business_name)}</a>
    <nav aria-label="Dashboard">{"".join(links)}</nav>{switcher}
    <span class="who">{escape(shell.email)} ({escape(shell.role)})</span>
    <form method="post" action="/dashboard/logout" class="logout">
      <input type="hidden" name="csrf" value="{escape(shell.csrf)}">
      <button type="submit">Log out</button>
    </form>
  </header>
  <main id="page" data-page="{escape(name)}" data-business="{escape(shell.business)}"{attrs}>
    <h1 id="title">{escape(title)}</h1>
    <p id="status" role="status" aria-live="polite"></p>
    <div id="content"></div>
  </main>
</body>
</html>
"""
    )
