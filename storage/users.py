"""Dashboard users, their login sessions and the login rate limit.

Passwords are hashed with argon2id (argon2-cffi's defaults: time_cost 3, 64 MiB, parallelism 4) and
re-hashed on login when those parameters change. A session id is 32 random bytes given to the
browser once; only its SHA-256 is stored. Sessions end after an idle period or at an absolute
deadline, whichever comes first, and a login always issues a fresh id (the old one is destroyed),
so a session id planted before login is worthless afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput, TooManyRequests, Unauthorized
from storage import tables as t
from storage.engine import Database

ROLES = ("admin", "owner", "staff")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


@dataclass(frozen=True, slots=True)
class Policy:
    """How long sessions live and how many failed logins are tolerated in a window."""

    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    window: timedelta = timedelta(minutes=15)
    per_account: int = 5
    per_ip: int = 20


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    role: str
    tenant_id: str | None
    staff_id: str | None


@dataclass(frozen=True, slots=True)
class Session:
    """A live session: who, and the token that must accompany each change (CSRF)."""

    user: User
    csrf_token: str


def _view(row: t.User) -> User:
    return User(row.id, row.email, row.role, row.tenant_id, row.staff_id)


def hasher() -> PasswordHasher:
    """argon2id with the library's current recommended parameters."""
    return PasswordHasher()


def hash_password(password: str, ph: PasswordHasher | None = None) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"password: {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return (ph or hasher()).hash(password)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if "@" not in value or len(value) > 320 or any(c.isspace() for c in value):
        raise InvalidInput("email: not an email address")
    return value


async def create(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    role: str,
    now: datetime,
    tenant_id: str | None = None,
    staff_id: str | None = None,
) -> User:
    """A new user. Admins belong to no business; owners and staff to exactly one; staff to one person."""
    if role not in ROLES:
        raise InvalidInput(f"role: one of {', '.join(ROLES)}")
    if role == "admin" and tenant_id is not None:
        raise InvalidInput("an admin sees every business: give no business")
    if role != "admin" and tenant_id is None:
        raise InvalidInput(f"a {role} needs a business")
    if (role == "staff") != (staff_id is not None):
        raise InvalidInput("a staff user needs their staff member (and only staff users have one)")
    address = normalize_email(email)
    if await session.scalar(select(t.User.id).where(t.User.email == address)) is not None:
        raise InvalidInput("email: a user with this email exists")
    row = t.User(
        email=address,
        password_hash=hash_password(password),
        role=role,
        tenant_id=tenant_id,
        staff_id=staff_id,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return _view(row)


async def _failures(session: AsyncSession, column: Any, value: str, since: datetime) -> int:
    count = await session.scalar(
        select(func.count()).select_from(t.LoginAttempt).where(column == value, t.LoginAttempt.at > since)
    )
    return int(count or 0)


# A real argon2id hash of a random string: an unknown email costs as much time as a wrong password.
_DUMMY = "$argon2id$v=19$m=65536,t=3,p=4$jWguc3Z+jg0E0QgqKZAi8Q$tSruJqOZugjudCfaKfLf+ETDYOSmxFvyThTbH+07qog"


def _check(stored: str, password: str) -> tuple[bool, str | None]:
    """(matches, a new hash when the stored one uses outdated parameters). CPU-bound: run in a thread."""
    ph = hasher()
    try:
        ph.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    return True, ph.hash(password) if ph.check_needs_rehash(stored) else None


async def authenticate(db: Database, email: str, password: str, ip: str, now: datetime, policy: Policy) -> User:
    """The user these credentials name, or :class:`Unauthorized` (one message for every reason).

    Refused with :class:`TooManyRequests` once the account or the address has had too many
    failures within the window, even when the password is right: guessing gets nowhere. The
    hash is checked in a thread outside any transaction (argon2 is slow on purpose).
    """
    address = email.strip().lower()[:320]
    ip = ip[:64]
    since = now - policy.window
    async with db.reading() as session:
        limited = (
            await _failures(session, t.LoginAttempt.email, address, since) >= policy.per_account
            or await _failures(session, t.LoginAttempt.ip, ip, since) >= policy.per_ip
        )
        row = await session.scalar(select(t.User).where(t.User.email == address))
    if limited:
        raise TooManyRequests("too many failed logins: try again later")
    ok, new_hash = await asyncio.to_thread(_check, row.password_hash if row else _DUMMY, password[:MAX_PASSWORD])
    ok = ok and row is not None and row.disabled_at is None
    async with db.writing() as session:
        if not ok or row is None:
            session.add(t.LoginAttempt(email=address, ip=ip, at=now))
        else:
            user = await session.get(t.User, row.id)
            assert user is not None
            if new_hash is not None:
                user.password_hash = new_hash
            user.last_login_at = now
            await session.execute(delete(t.LoginAttempt).where(t.LoginAttempt.email == address))
            await session.execute(delete(t.LoginAttempt).where(t.LoginAttempt.at <= since))  # keep the table small
            return _view(user)
    raise Unauthorized("wrong email or password")


async def start_session(
    session: AsyncSession, user: User, now: datetime, policy: Policy, *, replacing: str | None = None
) -> str:
    """A fresh session id for ``user`` (returned raw, once). ``replacing`` (the id the browser
    had before, if any) is destroyed: a login always rotates the id."""
    if replacing:
        await end_session(session, replacing)
    await session.execute(delete(t.DashboardSession).where(t.DashboardSession.expires_at <= now))
    raw = secrets.token_urlsafe(32)
    session.add(
        t.DashboardSession(
            id_hash=_digest(raw),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + policy.absolute,
        )
    )
    await session.flush()
    return raw


async def resume(session: AsyncSession, raw: str, now: datetime, policy: Policy) -> Session | None:
    """The live session behind a cookie value, touched; None when unknown, idle too long or expired."""
    if not raw or len(raw) > 100:
        return None
    row = await session.get(t.DashboardSession, _digest(raw))
    if row is None:
        return None
    if now >= row.expires_at or now - row.last_seen_at >= policy.idle:
        await session.delete(row)
        return None
    user = await session.get(t.User, row.user_id)
    if user is None or user.disabled_at is not None:
        await session.delete(row)
        return None
    row.last_seen_at = now
    return Session(_view(user), row.csrf_token)


async def end_session(session: AsyncSession, raw: str) -> None:
    await session.execute(delete(t.DashboardSession).where(t.DashboardSession.id_hash == _digest(raw)))


def check_csrf(expected: str, presented: str | None) -> bool:
    return presented is not None and secrets.compare_digest(expected.encode(), presented.encode())


async def staff_name(session: AsyncSession, staff_id: str) -> str:
    return (await session.scalar(select(t.Staff.name).where(t.Staff.id == staff_id))) or ""
