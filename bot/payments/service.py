"""The payment desk: checkout links, provider webhooks, lapsed holds and refunds, in one place.

Rules it keeps (DESIGN.md §5, reference/payments.md):
- amounts come from the appointment, which took them from the service row; nothing a model or a
  customer says ever sets an amount or marks anything paid: only a verified provider event does;
- a webhook is verified on its raw bytes, stored (deduplicated by ``(provider, event_id)``) before
  the provider is answered, and processed afterwards in one transaction with the state change;
- no network call runs inside a write transaction (SQLite's ``BEGIN IMMEDIATE`` would serialise
  everyone behind it): provider calls happen between transactions, with idempotency keys derived
  from our own rows so that a retry never creates a second session or refund;
- the customer hears about every outcome in the conversation they paid from (``notify``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from babel.dates import format_datetime
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.dialogue import catalogue
from bot.dialogue.desk import ref_of
from bot.links import ManageLinks, address_of
from bot.money import babel_locale, format_money
from bot.payments import OBSERVED, Link, LinkRequest, PaymentEvent, Provider, ProviderError, Remote
from bot.payments.local import LocalProvider, checkout_event, checkout_token, purchase_of
from bot.payments.razorpay import RazorpayProvider
from bot.payments.stripe import StripeProvider
from bot.settings import Settings
from channels.base import Link as MessageLink
from channels.base import Option, OutboundMessage
from core.booking import Status
from core.errors import Conflict, InvalidTransition, NotFound
from core.payments import (
    OPEN,
    Fit,
    PurchaseStatus,
    RefundPolicy,
    cancelled_by_customer,
    reconcile,
    refund_for,
    step,
)
from core.timezones import zone
from storage import bookings, purchases
from storage import tables as t
from storage.engine import Database

log = logging.getLogger(__name__)

Notify = Callable[[str, str, OutboundMessage], Awaitable[None]]
Clock = Callable[[], datetime]
RETRY_AFTER = timedelta(minutes=1)  # a stored event not processed by then is picked up by reconcile()


async def unwired_notify(tenant_id: str, conversation_id: str, message: OutboundMessage) -> None:
    """Until the dialogue manager registers its own (``PaymentDesk.set_notify``)."""
    log.warning("payment notice for a conversation dropped: no notifier is wired yet")


@dataclass(frozen=True, slots=True)
class Checkout:
    purchase_id: str
    url: str
    amount: int  # minor units
    currency: str
    amount_text: str  # in the customer's locale
    expires_at: datetime  # the end of the slot hold (UTC)
    message: OutboundMessage  # the link, worded for the conversation


@dataclass(frozen=True, slots=True)
class RefundPreview:
    amount: int
    currency: str
    amount_text: str
    kind: str  # full | partial | none | unpaid
    text: str  # one line for the customer, before they confirm the cancellation


@dataclass(frozen=True, slots=True)
class CheckoutView:
    """What the checkout/status page at ``/pay/{token}`` shows."""

    purchase_id: str
    provider: str
    status: str
    payable: bool  # the built-in provider, still unpaid, hold still on
    locale: str
    service: str
    when: str
    amount_text: str


@dataclass
class _Effects:
    """What a transaction decided that must happen after it commits."""

    notices: list[tuple[str, str, OutboundMessage]] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)
    expire: list[tuple[str, str]] = field(default_factory=list)
    outcome: str = ""


class PaymentDesk:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        clock: Clock,
        http: httpx.AsyncClient,
        notify: Notify,
        local_secret: bytes,
        links: ManageLinks | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self._notify = notify
        self._local_secret = local_secret
        self._public_url = settings.server.public_url.rstrip("/")
        self._businesses = settings.businesses
        self.links = links  # the bookings' manage links, for confirmations (this desk's and the chat's)
        pay = settings.payments
        self.providers: dict[str, Provider] = {
            "local": LocalProvider(local_secret, self._public_url, pay.local.tolerance_seconds)
        }
        if pay.stripe.secret_key or pay.stripe.webhook_secret:
            self.providers["stripe"] = StripeProvider(pay.stripe, http)
        if pay.razorpay.key_id or pay.razorpay.webhook_secret:
            self.providers["razorpay"] = RazorpayProvider(pay.razorpay, http)
        self.provider = self.providers[pay.provider]  # settings refuse a chosen provider without its keys
        self._tasks: set[asyncio.Task[None]] = set()

    def set_notify(self, notify: Notify) -> None:
        """The dialogue manager registers how a message reaches a conversation."""
        self._notify = notify

    def manage_link(self, appointment_id: str, ends_at: datetime, locale: str) -> MessageLink | None:
        """The link to a booking's own page (cancel, move), for the message confirming it."""
        if self.links is None:
            return None
        return MessageLink(self.links.url(appointment_id, ends_at), catalogue.text("manage.link_label", locale))

    # ----------------------------------------------------------------------- checkout

    async def open(self, tenant_id: str, appointment_id: str, *, conversation_id: str | None, locale: str) -> Checkout:
        """The payment link for a held appointment: one purchase per appointment, created once."""
        now = self.clock()
        req: LinkRequest | None = None
        provider_name = self.provider.name
        for attempt in range(2):
            try:
                async with self.db.writing() as session:
                    appt = await purchases.appointment_row(session, tenant_id, appointment_id)
                    _ensure_payable(appt, now)
                    row = await purchases.by_appointment(session, tenant_id, appointment_id)
                    if row is None:
                        service = await session.get(t.Service, appt.service_id)
                        assert service is not None
                        conversation = await self._conversation(session, tenant_id, conversation_id)
                        row = await purchases.create(
                            session,
                            appt,
                            service,
                            provider=self.provider.name,
                            locale=locale,
                            now=now,
                            conversation=conversation,
                        )
                    if row.url is not None:
                        return await self._checkout(session, row, appt)
                    req = await self._link_request(session, row, appt, now)
                    provider_name = row.provider
                break
            except IntegrityError:
                if attempt:
                    raise  # not the concurrent-create race: a real problem
        assert req is not None
        try:
            link = await self._provider(provider_name).create_link(req)
        except ProviderError as exc:
            if 400 <= exc.details.get("provider_status", 500) < 500:
                # Refused as asked (not lost on the way): the next try asks afresh, under a new key.
                async with self.db.writing() as session:
                    locked = await purchases.locked(session, req.purchase_id)
                    if locked is not None and locked.url is None:
                        locked.attempt, locked.link_expires_at = locked.attempt + 1, None
            raise  # 503 for the caller; a retry of a lost answer reuses the key and gets the first link
        async with self.db.writing() as session:
            locked = await purchases.locked(session, req.purchase_id)
            assert locked is not None
            if locked.url is None:
                _record_link(session, locked, link, now)
            appt = await purchases.appointment_row(session, tenant_id, appointment_id)
            return await self._checkout(session, locked, appt)

    async def _conversation(
        self, session: AsyncSession, tenant_id: str, conversation_id: str | None
    ) -> t.Conversation | None:
        if conversation_id is None:
            return None
        conversation = await session.get(t.Conversation, conversation_id)
        if conversation is None or conversation.tenant_id != tenant_id:
            raise NotFound("no such conversation")
        return conversation

    def _provider(self, name: str) -> Provider:
        provider = self.providers.get(name)
        if provider is None:
            raise ProviderError(f"payment provider {name} is not configured")
        return provider

    async def _link_request(
        self, session: AsyncSession, row: t.Purchase, appt: t.Appointment, now: datetime
    ) -> LinkRequest:
        """Everything the provider is sent, fixed by the first try (kept on the row), so that a retry
        under the same idempotency key sends exactly the same parameters."""
        customer = await session.get(t.Customer, row.customer_id)
        assert customer is not None and appt.hold_expires_at is not None
        if row.link_expires_at is None:
            row.link_expires_at = self._provider(row.provider).expiry(appt.hold_expires_at, now)
        return LinkRequest(
            purchase_id=row.id,
            tenant_id=row.tenant_id,
            appointment_id=row.appointment_id,
            amount=row.amount,
            currency=row.currency,
            description=str(row.items[0]["name"]) if row.items else "Booking",
            customer_name=customer.name,
            customer_phone=customer.phone,
            locale=row.locale,
            hold_expires_at=appt.hold_expires_at,
            link_expires_at=row.link_expires_at,
            idempotency_key=f"checkout:{row.id}:{row.attempt}",
            return_url=f"{self._public_url}/pay/{checkout_token(self._local_secret, row.id)}",
        )

    async def _checkout(self, session: AsyncSession, row: t.Purchase, appt: t.Appointment) -> Checkout:
        assert row.url is not None and appt.hold_expires_at is not None
        fmt = await self._formatting(session, row)
        amount_text = format_money(row.amount, row.currency, row.locale)
        text = catalogue.text(
            "payment.link",
            row.locale,
            service=fmt.service,
            when=fmt.when(appt.starts_at),
            until=fmt.time(appt.hold_expires_at),
            amount=amount_text,
        )
        label = catalogue.text("payment.link_label", row.locale, amount=amount_text)
        return Checkout(
            purchase_id=row.id,
            url=row.url,
            amount=row.amount,
            currency=row.currency,
            amount_text=amount_text,
            expires_at=appt.hold_expires_at,
            message=OutboundMessage(text, link=MessageLink(row.url, label)),
        )

    # ----------------------------------------------------------------------- cancellation and refunds

    async def refund_preview(self, tenant_id: str, appointment_id: str, now: datetime, locale: str) -> RefundPreview:
        """What cancelling at ``now`` would give back under the service's policy (the customer cancels)."""
        async with self.db.reading() as session:
            appt = await purchases.appointment_row(session, tenant_id, appointment_id)
            service = await session.get(t.Service, appt.service_id)
            assert service is not None
            row = await purchases.by_appointment(session, tenant_id, appointment_id)
        policy = _policy(service)
        paid = row.amount if row is not None and row.status == "completed" and row.refund_status == "none" else 0
        currency = row.currency if row is not None else appt.currency
        quote = refund_for(paid, appt.starts_at, now, policy)
        amount_text = format_money(quote.amount, currency, locale)
        text = catalogue.text(
            f"payment.refund_preview.{quote.kind.value}",
            locale,
            amount=amount_text,
            paid=format_money(paid, currency, locale),
            percent=policy.partial_percent,
            hours=f"{policy.full_hours:g}",
        )
        return RefundPreview(quote.amount, currency, amount_text, quote.kind.value, text)

    async def cancel_booking(
        self,
        tenant_id: str,
        appointment_id: str,
        now: datetime,
        *,
        actor: str = "api",
        reason: str = "",
        enforce_policy: bool = True,
    ) -> bookings.Outcome:
        """Cancel a booking and settle its payment: every way of cancelling (the chat, the API, the
        dashboard, the customer's manage link) comes through here, so none forgets the refund."""
        outcome = await bookings.cancel(
            self.db, tenant_id, appointment_id, now, actor=actor, reason=reason, enforce_policy=enforce_policy
        )
        if outcome.changed:
            await self.after_cancel(tenant_id, appointment_id)
        return outcome

    async def after_cancel(self, tenant_id: str, appointment_id: str) -> None:
        """The appointment was cancelled: stop an unpaid link, or refund what the policy gives back
        (once: the refund's idempotency key is the purchase's)."""
        now = self.clock()
        effects = _Effects()
        async with self.db.writing() as session:
            appt = await purchases.appointment_row(session, tenant_id, appointment_id)
            if appt.status != Status.CANCELLED.value:
                return
            row = await purchases.by_appointment(session, tenant_id, appointment_id, lock=True)
            if row is None:
                return
            status = PurchaseStatus(row.status)
            if status in OPEN:
                await purchases.move(session, row, PurchaseStatus.EXPIRED, now, "cancelled", "system")
                if row.provider_ref:
                    effects.expire.append((row.provider, row.provider_ref))
            elif status is PurchaseStatus.COMPLETED and row.refund_status == "none":
                service = await session.get(t.Service, appt.service_id)
                assert service is not None
                cancel = await bookings.last_cancellation(session, appointment_id)
                at, actor = (cancel.at, cancel.actor) if cancel is not None else (now, "system")
                quote = refund_for(
                    row.amount, appt.starts_at, at, _policy(service), by_customer=cancelled_by_customer(actor)
                )
                if quote.amount > 0:
                    row.refund_status, row.refund_amount, row.refund_reason = "due", quote.amount, "cancelled"
                    purchases.note(
                        session, row, now, "refund_due", "system", policy=quote.kind.value, amount=quote.amount
                    )
                    effects.refunds.append(row.id)
                else:
                    purchases.note(session, row, now, "no_refund", "system", policy=quote.kind.value)
        await self._after(effects)

    async def _issue_refund(self, purchase_id: str) -> None:
        """Ask the provider for a refund that is due. Safe to repeat and to race: the key is fixed."""
        async with self.db.reading() as session:
            row = await session.get(t.Purchase, purchase_id)
        if row is None or row.refund_status != "due" or row.status != PurchaseStatus.COMPLETED.value:
            return
        provider = self.providers.get(row.provider)
        if provider is None:
            log.warning("refund of purchase %s waits: provider %s is not configured", row.id, row.provider)
            return
        payment_ref = row.payment_ref
        key = f"refund:{row.id}:1"
        try:
            if payment_ref is None and row.provider_ref:
                payment_ref = (await provider.fetch(row.provider_ref)).payment_ref
            if payment_ref is None:
                log.warning("refund of purchase %s waits: the provider has not named the payment", row.id)
                return
            result = await provider.refund(
                payment_ref=payment_ref, amount=row.refund_amount, currency=row.currency, key=key, purchase_id=row.id
            )
        except ProviderError as exc:
            log.warning("refund of purchase %s postponed: %s", row.id, exc.message)
            return
        now = self.clock()
        effects = _Effects()
        async with self.db.writing() as session:
            locked = await purchases.locked(session, purchase_id)
            if locked is None or locked.refund_status != "due":
                return
            locked.payment_ref = locked.payment_ref or payment_ref
            locked.refund_ref = result.ref
            purchases.note(
                session, locked, now, "refund_requested", "system", refund_ref=result.ref, amount=locked.refund_amount
            )
            if result.settled:
                await purchases.move(
                    session, locked, PurchaseStatus.REFUNDED, now, "refunded", f"refund:{locked.provider}"
                )
                await self._on_refunded(session, locked, None, result.ref, effects)
            elif result.failed:
                locked.refund_status = "failed"
                log.warning("the provider refused the refund of purchase %s", locked.id)
            else:
                locked.refund_status = "requested"  # settles with a later refund event
        await self._deliver(effects)

    # ----------------------------------------------------------------------- webhooks

    async def handle_webhook(
        self, provider: str, body: bytes, headers: Mapping[str, str], *, wait: bool = False
    ) -> None:
        """Verify (raw bytes), read, store; then process in the background (``wait``: right away).

        Raises ``NotFound`` (unknown provider), ``Unauthorized``/``Forbidden`` (bad signature:
        nothing is stored) and ``MalformedRequest``. Unknown event kinds are dropped quietly.
        """
        adapter = self.providers.get(provider)
        if adapter is None:
            raise NotFound("no such payment provider")
        lowered = {k.lower(): v for k, v in headers.items()}
        adapter.verify(body, lowered, self.clock())
        event = adapter.parse(body, lowered)
        if event.kind == "ignored":
            log.debug("payment event %s from %s ignored", event.event_type, provider)
            return
        stored = await purchases.store_webhook(
            self.db, provider, event.event_id, event.event_type, body.decode("utf-8"), self.clock()
        )
        if stored.processed:
            return  # a redelivery: it was applied once already
        if wait:
            await self.process(provider, stored.id)  # errors reach the caller (the checkout page, tests)
        else:
            self._spawn(self.process(provider, stored.id))

    async def process(self, provider_name: str, webhook_id: str) -> None:
        """Apply one stored event; a crash leaves it unprocessed for :meth:`reconcile`."""
        adapter = self.providers[provider_name]
        remote: Remote | None = None
        effects = _Effects()
        for _ in range(2):
            effects = _Effects()
            fetch_ref: str | None = None
            async with self.db.writing() as session:
                hook = await purchases.claim_webhook(session, webhook_id)
                if hook is None:
                    return  # processed meanwhile
                hook.attempts += 1
                event = dataclasses.replace(adapter.parse(hook.body.encode(), {}), event_id=hook.event_id)
                now = self.clock()
                row = await purchases.match(
                    session,
                    provider_name,
                    purchase_id=event.purchase_id,
                    provider_ref=event.provider_ref,
                    payment_ref=event.payment_ref,
                )
                if row is None:
                    hook.processed_at, hook.outcome = now, "unmatched"
                    log.warning("payment event %s from %s matches no purchase", event.event_type, provider_name)
                    return
                hook.tenant_id, hook.purchase_id = row.tenant_id, row.id
                if remote is None:
                    fit = await self._apply_event(session, row, event, now, effects)
                else:
                    fit = await self._apply_remote(session, row, remote, event, now, effects)
                if fit is Fit.REFETCH and remote is None and row.provider_ref:
                    fetch_ref = row.provider_ref  # leave the event unprocessed until we know more
                else:
                    hook.processed_at, hook.outcome = now, effects.outcome[:64]
            if fetch_ref is None:
                break
            remote = await adapter.fetch(fetch_ref)
        await self._after(effects)

    async def _apply_event(
        self, session: AsyncSession, row: t.Purchase, event: PaymentEvent, now: datetime, effects: _Effects
    ) -> Fit:
        source = f"webhook:{row.provider}"
        details = {"event_id": event.event_id, "event_type": event.event_type}
        observed = OBSERVED.get(event.kind)
        if observed is None:
            self._annotate(session, row, event, now, source, details, effects)
            return Fit.SAME
        decision = step(PurchaseStatus(row.status), observed)
        if decision.fit is Fit.REFETCH:
            effects.outcome = "refetch"
            return Fit.REFETCH
        if decision.fit in (Fit.SAME, Fit.STALE):
            purchases.note(session, row, now, f"{decision.fit.value}:{event.kind}", source, **details)
            effects.outcome = decision.fit.value
            return decision.fit
        _learn(row, event.payment_ref, event.payment_method)
        await self._enter(
            session, row, decision.path, event.amount, event.currency, event.refund_ref, now, source, details, effects
        )
        effects.outcome = f"moved:{row.status}"
        return Fit.MOVE

    async def _apply_remote(
        self,
        session: AsyncSession,
        row: t.Purchase,
        remote: Remote,
        event: PaymentEvent,
        now: datetime,
        effects: _Effects,
    ) -> Fit:
        """The provider's own status decides when the events did not add up."""
        source = f"fetch:{row.provider}"
        details = {"event_id": event.event_id, "event_type": event.event_type, "remote": str(remote.status)}
        if remote.status is None:
            purchases.note(session, row, now, "refetched_open", source, **details)
            effects.outcome = "refetched:open"
            return Fit.SAME
        decision = reconcile(PurchaseStatus(row.status), remote.status)
        if decision.fit is not Fit.MOVE:
            purchases.note(session, row, now, f"refetched_{decision.fit.value}", source, **details)
            effects.outcome = f"refetched:{decision.fit.value}"
            return decision.fit
        _learn(row, remote.payment_ref, remote.payment_method)
        refunded = remote.refunded or None
        await self._enter(
            session, row, decision.path, remote.amount, None, None, now, source, details, effects, refunded
        )
        effects.outcome = f"refetched:{row.status}"
        return Fit.MOVE

    async def _enter(
        self,
        session: AsyncSession,
        row: t.Purchase,
        path: tuple[PurchaseStatus, ...],
        amount: int | None,
        currency: str | None,
        refund_ref: str | None,
        now: datetime,
        source: str,
        details: dict[str, Any],
        effects: _Effects,
        refunded: int | None = None,
    ) -> None:
        """Walk the purchase along ``path``, doing what each state means for the booking."""
        final = path[-1]
        for target in path:
            await purchases.move(session, row, target, now, target.value, source, **details)
            if target is PurchaseStatus.COMPLETED:
                # Money that came back already (a path through to refunded) confirms nothing.
                await self._on_paid(session, row, amount, currency, now, source, effects, confirm=final is target)
            elif target is PurchaseStatus.FAILED:
                effects.notices.extend(await self._notice(session, row, "payment.failed"))
            elif target is PurchaseStatus.EXPIRED:
                released = await bookings.expire_hold_in(session, row.tenant_id, row.appointment_id, now)
                if released or await bookings.hold_lapsed(session, row.tenant_id, row.appointment_id):
                    effects.notices.extend(await self._notice(session, row, "payment.hold_expired", again=True))
            elif target is PurchaseStatus.REFUNDED:
                await self._on_refunded(session, row, refunded if refunded else amount, refund_ref, effects)
            elif target is PurchaseStatus.DISPUTED and row.refund_status == "due":
                row.refund_status = "blocked"  # no automatic refund during a dispute: never pay twice
                log.warning("purchase %s is disputed; its pending refund is stopped", row.id)

    async def _on_paid(
        self,
        session: AsyncSession,
        row: t.Purchase,
        amount: int | None,
        currency: str | None,
        now: datetime,
        source: str,
        effects: _Effects,
        *,
        confirm: bool,
    ) -> None:
        if (amount is not None and amount != row.amount) or (currency is not None and currency.upper() != row.currency):
            # Cannot happen with links we created; if it does, the booking is not confirmed on it.
            purchases.note(session, row, now, "amount_mismatch", source, paid=amount, currency=currency)
            row.refund_status, row.refund_amount, row.refund_reason = "due", amount or row.amount, "amount_mismatch"
            effects.refunds.append(row.id)
            return
        if not confirm:
            return
        outcome = await bookings.confirm_payment_in(session, row.tenant_id, row.appointment_id, now, actor=source)
        if outcome.result == "confirmed":
            purchases.note(session, row, now, "appointment_confirmed", source, revived=outcome.revived)
            effects.notices.extend(await self._notice(session, row, "payment.confirmed"))
        elif outcome.result == "refund":
            # The slot went to someone else while the money was on its way: give it all back.
            row.refund_status, row.refund_amount, row.refund_reason = "due", row.amount, "slot_unavailable"
            purchases.note(session, row, now, "refund_due", source, reason="slot_unavailable", amount=row.amount)
            effects.refunds.append(row.id)
            effects.notices.extend(await self._notice(session, row, "payment.late_refund", again=True))

    async def _on_refunded(
        self, session: AsyncSession, row: t.Purchase, amount: int | None, refund_ref: str | None, effects: _Effects
    ) -> None:
        if row.refund_status not in ("due", "requested"):
            row.refund_reason = row.refund_reason or "provider"  # refunded from the provider's dashboard
        row.refund_status = "succeeded"
        row.refund_amount = amount or row.refund_amount or row.amount
        row.refund_ref = row.refund_ref or refund_ref
        effects.notices.extend(await self._notice(session, row, "payment.refunded", amount=row.refund_amount))

    def _annotate(
        self,
        session: AsyncSession,
        row: t.Purchase,
        event: PaymentEvent,
        now: datetime,
        source: str,
        details: dict[str, Any],
        effects: _Effects,
    ) -> None:
        """Events that do not change the status: they still land in the history."""
        if event.kind == "processing":
            _learn(row, event.payment_ref, event.payment_method)
        elif event.kind == "refund_pending" and row.refund_status in ("none", "due"):
            row.refund_status, row.refund_ref = "requested", row.refund_ref or event.refund_ref
        elif event.kind == "refund_failed":
            row.refund_status = "failed"
            log.warning("a refund of purchase %s failed at the provider", row.id)
        purchases.note(session, row, now, event.kind, source, **details)
        effects.outcome = f"noted:{event.kind}"

    # ----------------------------------------------------------------------- sweeps

    async def expire_holds(self) -> int:
        """Release lapsed holds, expire their unpaid purchases and tell each customer (in the
        conversation the link was sent to). Returns how many purchases lapsed with their hold.
        The scheduler calls this every minute."""
        now = self.clock()
        await bookings.expire_holds(self.db, now)
        effects = _Effects()
        lapsed_count = 0
        async with self.db.writing() as session:
            for row in await purchases.released_open(session):
                lapsed = await bookings.hold_lapsed(session, row.tenant_id, row.appointment_id)
                await purchases.move(
                    session, row, PurchaseStatus.EXPIRED, now, "hold_expired" if lapsed else "cancelled", "system"
                )
                if row.provider_ref:
                    effects.expire.append((row.provider, row.provider_ref))
                if lapsed:
                    effects.notices.extend(await self._notice(session, row, "payment.hold_expired", again=True))
                    lapsed_count += 1
        await self._after(effects)
        return lapsed_count

    async def reconcile(self) -> int:
        """Retry what an earlier failure left behind: due refunds and stored, unprocessed events."""
        done = 0
        for purchase_id in await purchases.refunds_due(self.db):
            await self._issue_refund(purchase_id)
            done += 1
        for webhook_id, provider in await purchases.unprocessed_webhooks(self.db, self.clock() - RETRY_AFTER):
            if provider in self.providers:
                try:
                    await self.process(provider, webhook_id)
                    done += 1
                except ProviderError as exc:
                    log.warning("stored %s event still waits: %s", provider, exc.message)
        return done

    async def drain(self) -> None:
        """Wait for background processing (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(self._guard(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception:
            log.exception("processing a payment event failed; it stays stored and will be retried")

    async def _after(self, effects: _Effects) -> None:
        for provider, ref in effects.expire:
            adapter = self.providers.get(provider)
            if adapter is None:
                continue
            try:
                await adapter.expire(ref)
            except ProviderError as exc:
                log.warning("could not expire a %s link: %s", provider, exc.message)
        await self._deliver(effects)
        for purchase_id in effects.refunds:
            await self._issue_refund(purchase_id)

    async def _deliver(self, effects: _Effects) -> None:
        for tenant_id, conversation_id, message in effects.notices:
            try:
                await self._notify(tenant_id, conversation_id, message)
            except Exception:
                log.exception("a payment notice could not be delivered")
        effects.notices.clear()

    # ----------------------------------------------------------------------- the checkout page

    async def checkout_view(self, token: str) -> CheckoutView | None:
        purchase_id = purchase_of(self._local_secret, token)
        if purchase_id is None:
            return None
        async with self.db.reading() as session:
            row = await session.get(t.Purchase, purchase_id)
            if row is None:
                return None
            appt = await session.get(t.Appointment, row.appointment_id)
            assert appt is not None
            fmt = await self._formatting(session, row)
        now = self.clock()
        payable = (
            row.provider == "local"
            and PurchaseStatus(row.status) in OPEN
            and appt.status == Status.PENDING_PAYMENT.value
            and appt.hold_expires_at is not None
            and appt.hold_expires_at > now
        )
        status = row.status
        if PurchaseStatus(row.status) in OPEN and not payable and row.provider == "local":
            status = PurchaseStatus.EXPIRED.value
        return CheckoutView(
            purchase_id=row.id,
            provider=row.provider,
            status=status,
            payable=payable,
            locale=row.locale,
            service=fmt.service,
            when=fmt.when(appt.starts_at),
            amount_text=format_money(row.amount, row.currency, row.locale),
        )

    async def submit_local(self, token: str, *, paid: bool) -> CheckoutView | None:
        """The built-in checkout's buttons: a signed provider event through the webhook path."""
        view = await self.checkout_view(token)
        if view is None or not view.payable:
            return view
        async with self.db.reading() as session:
            row = await session.get(t.Purchase, view.purchase_id)
        assert row is not None
        body, headers = checkout_event(
            self._local_secret,
            purchase_id=row.id,
            paid=paid,
            amount=row.amount,
            currency=row.currency,
            now=self.clock(),
        )
        await self.handle_webhook("local", body, headers, wait=True)
        return await self.checkout_view(token)

    # ----------------------------------------------------------------------- wording

    async def _formatting(self, session: AsyncSession, row: t.Purchase) -> _Format:
        business = await session.get(t.Business, row.tenant_id)
        assert business is not None
        tz_name: str | None = None
        if row.conversation_id is not None:
            tz_name = await session.scalar(
                select(t.Conversation.timezone).where(t.Conversation.id == row.conversation_id)
            )
        if tz_name is None:
            tz_name = await session.scalar(select(t.Customer.timezone).where(t.Customer.id == row.customer_id))
        name = str(row.items[0]["name"]) if row.items else ""
        return _Format(zone(tz_name or business.timezone), row.locale, name)

    async def _notice(
        self, session: AsyncSession, row: t.Purchase, key: str, *, again: bool = False, amount: int | None = None
    ) -> list[tuple[str, str, OutboundMessage]]:
        """One message for the conversation the customer paid from (none without a conversation)."""
        if row.conversation_id is None:
            return []
        appt = await session.get(t.Appointment, row.appointment_id)
        assert appt is not None
        fmt = await self._formatting(session, row)
        where, link = "", None
        if key == "payment.confirmed":  # the confirmation: where to go, and the booking's own page
            business = await session.get(t.Business, row.tenant_id)
            assert business is not None
            place = address_of(self._businesses, business.slug, business.info or {})
            where = " " + catalogue.text("automation.location", row.locale, place=place) if place else ""
            link = self.manage_link(appt.id, appt.ends_at, row.locale)
        text = catalogue.text(
            key,
            row.locale,
            amount=format_money(row.amount if amount is None else amount, row.currency, row.locale),
            service=fmt.service,
            when=fmt.when(appt.starts_at),
            until=fmt.time(appt.hold_expires_at or appt.starts_at),
            ref=ref_of(appt.id),
            where=where,
        )
        options = (Option("menu:book", catalogue.text("payment.book_again", row.locale)),) if again else ()
        return [(row.tenant_id, row.conversation_id, OutboundMessage(text, options, link))]


@dataclass(frozen=True, slots=True)
class _Format:
    """Instants shown in the customer's zone and locale."""

    tz: ZoneInfo
    locale: str
    service: str

    def when(self, at: datetime) -> str:
        loc = babel_locale(self.locale)
        pattern = "EEE d MMM, h:mm a" if loc.startswith("en") else "EEE d MMM, HH:mm"
        return f"{format_datetime(at.astimezone(self.tz), pattern, locale=loc)} {_zone_label(at, self.tz)}"

    def time(self, at: datetime) -> str:
        loc = babel_locale(self.locale)
        pattern = "h:mm a" if loc.startswith("en") else "HH:mm"
        return f"{format_datetime(at.astimezone(self.tz), pattern, locale=loc)} {_zone_label(at, self.tz)}"


def _zone_label(at: datetime, tz: ZoneInfo) -> str:
    short = at.astimezone(tz).tzname() or ""
    return short if short and not short.lstrip("+-").isdigit() else tz.key


def _ensure_payable(appt: t.Appointment, now: datetime) -> None:
    if appt.status != Status.PENDING_PAYMENT.value or appt.price <= 0:
        raise InvalidTransition("this booking is not waiting for a payment", code="not_payable")
    if appt.hold_expires_at is None or appt.hold_expires_at <= now:
        raise Conflict("the hold on this slot has lapsed; book again", code="hold_expired")


def _record_link(session: AsyncSession, row: t.Purchase, link: Link, now: datetime) -> None:
    row.provider_ref, row.url, row.link_expires_at, row.updated_at = link.ref, link.url, link.expires_at, now
    purchases.note(
        session, row, now, "link_created", "system", provider_ref=link.ref, expires_at=link.expires_at.isoformat()
    )


def _learn(row: t.Purchase, payment_ref: str | None, payment_method: str | None) -> None:
    row.payment_ref = row.payment_ref or payment_ref
    row.payment_method = row.payment_method or payment_method


def _policy(service: t.Service) -> RefundPolicy:
    return RefundPolicy(full_hours=service.refund_full_hours, partial_percent=service.refund_partial_percent)
