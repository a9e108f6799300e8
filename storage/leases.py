"""Row claims shared by the scheduler's jobs: a compare-and-set on ``lease_until``.

Two scheduler processes may tick at the same moment; whichever UPDATE matches first owns the row
(or the singleton job) until its lease lapses. On PostgreSQL the losing UPDATE waits for the
winner's commit and then re-checks its WHERE clause, so it matches nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update

from storage import tables as t
from storage.engine import Database, dialect_insert


async def take_job(db: Database, name: str, holder: str, now: datetime, lease: timedelta) -> bool:
    """The right to run singleton job ``name`` now (alert evaluation, roll-ups), or False."""
    async with db.writing() as session:
        insert = dialect_insert(session)
        await session.execute(insert(t.JobLease).values(name=name).on_conflict_do_nothing(index_elements=["name"]))
        taken = await session.execute(
            update(t.JobLease)
            .where(
                t.JobLease.name == name,
                or_(t.JobLease.lease_until.is_(None), t.JobLease.lease_until <= now, t.JobLease.holder == holder),
            )
            .values(holder=holder, lease_until=now + lease, last_run_at=now)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]


async def release_job(db: Database, name: str, holder: str) -> None:
    async with db.writing() as session:
        await session.execute(
            update(t.JobLease).where(t.JobLease.name == name, t.JobLease.holder == holder).values(lease_until=None)
        )
