"""Database engines and sessions.

SQLite: WAL, foreign keys, busy timeout, synchronous=FULL, and transactions we begin ourselves
(pysqlite's implicit BEGIN would let a read run outside the writing transaction, see
reference/booking.md §4.2): ``BEGIN IMMEDIATE`` for every write unit of work, so the
availability re-check and the insert are serialised against other writers; plain ``BEGIN`` for
reads. PostgreSQL: the exclusion constraint is the arbiter; statement and lock timeouts are set.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

_BEGIN_OPTION = "frontdesk_sqlite_begin"


class WriterQueue:
    """SQLite's single writer, taken in turn by this process's writers (cheap and fair, instead of
    spinning on the file lock until busy_timeout). ``urgent`` writers (webhook inserts: a provider
    is waiting for its 200) go before the queued ordinary ones (turns, the relay)."""

    def __init__(self) -> None:
        self._busy = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._ordinary: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def hold(self, *, urgent: bool = False) -> AsyncIterator[None]:
        if self._busy:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            queue = self._urgent if urgent else self._ordinary
            queue.append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._hand_on()  # it was handed to us just as we were cancelled: pass it on
                else:
                    queue.remove(turn)
                raise
        else:
            self._busy = True
        try:
            yield
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        for queue in (self._urgent, self._ordinary):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # still busy: the writer is now the next waiter
                    return
        self._busy = False


@dataclass(frozen=True, slots=True)
class Database:
    """The engine plus two session factories: ``write`` (serialised on SQLite) and ``read``."""

    engine: AsyncEngine
    write: async_sessionmaker[AsyncSession]
    read: async_sessionmaker[AsyncSession]
    # SQLite has one writer: in this process, writers queue here; other processes meet the file lock.
    _writer: WriterQueue | None = field(default=None)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def writing(self, *, urgent: bool = False) -> AsyncIterator[AsyncSession]:
        """One write transaction: commits on success, rolls back on any exception. ``urgent``: a
        provider waits on it (SQLite: ahead of the queued turns; PostgreSQL has no queue)."""
        if self._writer is None:
            async with self.write() as session, session.begin():
                yield session
            return
        async with self._writer.hold(urgent=urgent), self.write() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with self.read() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


async def one_at_a_time(session: AsyncSession, key: int) -> None:
    """Across processes, one transaction holding ``key`` at a time, until it ends: PostgreSQL's
    transaction-scoped advisory lock (SQLite's single writer already serialises writers)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def dialect_insert(session: AsyncSession | Session) -> Any:
    """The backend's INSERT construct, which knows ``ON CONFLICT`` (SQLite and PostgreSQL alike)."""
    return insert_for(session.get_bind().dialect.name)


def insert_for(backend: str) -> Any:
    """:func:`dialect_insert` by the dialect's name (``"postgresql"`` or ``"sqlite"``)."""
    return pg_insert if backend == "postgresql" else sqlite_insert


# Lost a race with a concurrent transaction, not a fault of the work: PostgreSQL's deadlock and
# serialization failures, SQLite's busy lock after busy_timeout. Retrying is the cure.
_CONTENTION_SQLSTATES = frozenset({"40P01", "40001"})


def is_contention(exc: BaseException) -> bool:
    """True when ``exc`` (or the driver error it wraps) means "retry", not "this work is broken"."""
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) in _CONTENTION_SQLSTATES:
        return True
    return "database is locked" in str(exc.orig)


def create_database(url: str, *, echo: bool = False, busy_timeout_ms: int = 10_000, pool_size: int = 10) -> Database:
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        if ":memory:" in url or url.rstrip("/").endswith("sqlite+aiosqlite:"):
            raise ValueError("use a SQLite file, not :memory: (each connection would get its own database)")
        kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000}
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size
        kwargs["connect_args"] = {"server_settings": {"statement_timeout": "15000", "lock_timeout": "10000"}}
    if kwargs.get("pool_size") == 0:
        kwargs.pop("pool_size"), kwargs.pop("max_overflow")
        kwargs["poolclass"] = NullPool
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, busy_timeout_ms)
    write_engine = engine.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
    return Database(
        engine=engine,
        write=async_sessionmaker(write_engine, expire_on_commit=False),
        read=async_sessionmaker(engine, expire_on_commit=False),
        _writer=WriterQueue() if engine.dialect.name == "sqlite" else None,
    )


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))
