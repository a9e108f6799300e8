"""Payment routes: provider webhooks and the checkout/status page.

``POST /webhooks/payments/{provider}``: verified on the raw bytes (401/403 and nothing stored when
the signature is wrong), 400 when unreadable, 413 when too large, stored before the 200 and
processed after it; kinds we do not act on get a 200 too. ``GET /pay/{token}``: the page a
payment link or a provider's redirect lands on (it shows the state, it never changes it);
for the built-in provider it carries pay / fail buttons (``POST /pay/{token}``), whose result
travels as a signed event through the same webhook path.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

from bot.context import context
from bot.dialogue import catalogue
from bot.payments.service import CheckoutView, PaymentDesk
from core.errors import NotFound, PayloadTooLarge

PAYMENTS = web.AppKey("payments", PaymentDesk)

routes = web.RouteTableDef()


def desk(request: web.Request) -> PaymentDesk:
    return request.app[PAYMENTS]


@routes.post("/webhooks/payments/{provider}")
async def webhook(request: web.Request) -> web.Response:
    limit = context(request).settings.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge("the body is too large")
    body = await request.read()  # aiohttp refuses a body beyond client_max_size with 413 too
    if len(body) > limit:
        raise PayloadTooLarge("the body is too large")
    await desk(request).handle_webhook(request.match_info["provider"], body, request.headers)
    return web.json_response({"received": True})


@routes.get("/pay/{token}")
async def checkout_page(request: web.Request) -> web.Response:
    view = await desk(request).checkout_view(request.match_info["token"])
    if view is None:
        raise NotFound("no such payment")
    return _page(view, request.match_info["token"])


@routes.post("/pay/{token}")
async def checkout_submit(request: web.Request) -> web.Response:
    form = await request.post()
    action = form.get("action")
    if action not in ("pay", "fail"):
        raise NotFound("no such action")
    token = request.match_info["token"]
    view = await desk(request).submit_local(token, paid=action == "pay")
    if view is None:
        raise NotFound("no such payment")
    return _page(view, token, submitted=True)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}"
    "button{font-size:1rem;padding:.6rem 1rem;margin:.3rem 0;width:100%;border-radius:.4rem;border:1px solid #888}"
    ".pay{background:#1a7f37;color:#fff;border-color:#1a7f37}.note{color:#666;font-size:.9rem}"
)


def _page(view: CheckoutView, token: str, *, submitted: bool = False) -> web.Response:
    """Every value is escaped: names and services come from the business's own configuration."""

    def say(key: str, **params: str) -> str:
        return escape(catalogue.text(key, view.locale, **params))

    parts = [
        f"<h1>{say('payment.page.title')}</h1>",
        f"<p>{say('payment.page.summary', service=view.service, when=view.when)}</p>",
        f"<p><strong>{say('payment.page.amount', amount=view.amount_text)}</strong></p>",
    ]
    if view.payable:
        action = f"/pay/{escape(token, quote=True)}"
        if submitted:
            parts.append(f"<p>{say('payment.page.failed')}</p>")
        parts.append(
            f'<form method="post" action="{action}"><input type="hidden" name="action" value="pay">'
            f'<button class="pay" type="submit">{say("payment.page.pay", amount=view.amount_text)}</button></form>'
            f'<form method="post" action="{action}"><input type="hidden" name="action" value="fail">'
            f'<button type="submit">{say("payment.page.fail")}</button></form>'
            f'<p class="note">{say("payment.page.demo")}</p>'
        )
    else:
        key = {
            "completed": "payment.page.completed",
            "failed": "payment.page.failed",
            "expired": "payment.page.expired",
            "refunded": "payment.page.refunded",
            "disputed": "payment.page.disputed",
        }.get(view.status, "payment.page.pending")
        parts.append(f"<p>{say(key)}</p>")
    lang = escape(catalogue.language(view.locale), quote=True)
    html = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{say('payment.page.title')}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )
    return web.Response(
        text=html,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",  # the token is in the URL
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            "X-Frame-Options": "DENY",
        },
    )
