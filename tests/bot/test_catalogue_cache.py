"""The dialogue keeps each business's services and staff in memory, checked by version every turn.

Another process (here: a second engine on the same SQLite file, as the API or the dashboard of
another worker would be) changes the catalogue; the next turn of this process must show the change.
"""

from __future__ import annotations

from sqlalchemy import event, select

from bot.dialogue.manager import DialogueManager
from bot.settings import Settings
from storage import catalog
from storage import tables as t
from storage.engine import Database, create_database
from tests.bot.test_conversations_rules import Chat, manager_for
from tests.conftest import FrozenClock, tenant_of


class Reads:
    """The statements this engine sends that read the services table."""

    def __init__(self, db: Database) -> None:
        self.services = 0
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM services" in statement:
            self.services += 1


async def version(db: Database, tenant_id: str) -> int:
    async with db.reading() as session:
        found = await session.scalar(select(t.Business.catalog_version).where(t.Business.id == tenant_id))
        assert found is not None
        return found


async def test_turns_reuse_the_catalogue_until_another_process_changes_it(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    manager: DialogueManager = manager_for(db, settings, clock)
    reads = Reads(db)
    chat = Chat(manager)
    await chat.say("what services do you offer and how much?")
    assert "Check-up — 30 min, €50.00" in chat.text
    first = reads.services
    assert first >= 1
    await chat.say("what services do you offer and how much?")
    assert "Check-up — 30 min, €50.00" in chat.text
    assert reads.services == first, "an unchanged catalogue is not read again"

    tenant = await tenant_of(db, "acme")
    before = await version(db, tenant)
    other = create_database(settings.database.url)  # the API in another process
    try:
        async with other.writing() as session:
            row = await catalog.service_row(session, tenant, "checkup")
            row.price = 7000
        assert await version(db, tenant) == before + 1
        await chat.say("what services do you offer and how much?")
        assert "Check-up — 30 min, €70.00" in chat.text
        assert reads.services == first + 1

        asking = Chat(manager, sender="visitor-2")
        await asking.say("book a check-up")
        assert {"Ann", "Bob"} <= set(asking.labels)
        async with other.writing() as session:
            await catalog.deactivate_staff(session, tenant, "ann")
        later = Chat(manager, sender="visitor-3")
        await later.say("book a check-up")
        assert "Ann" not in later.labels and "Ann" not in later.text

        async with other.writing() as session:
            await catalog.deactivate_service(session, tenant, "checkup")
        await chat.say("what services do you offer and how much?")
        assert "Check-up" not in chat.text and "Solo — 30 min, free" in chat.text

    finally:
        await other.dispose()


async def test_every_catalogue_write_moves_the_version(db: Database) -> None:
    tenant = await tenant_of(db, "acme")
    seen = [await version(db, tenant)]
    async with db.writing() as session:
        spec = catalog.service_spec(await catalog.service_row(session, tenant, "checkup"))
        await catalog.upsert_service(session, tenant, spec.model_copy(update={"slug": "new-one", "name": "New"}))
    seen.append(await version(db, tenant))
    async with db.writing() as session:
        (await catalog.staff_row(session, tenant, "ann")).name = "Annie"
    seen.append(await version(db, tenant))
    async with db.writing() as session:
        await session.delete(await catalog.service_row(session, tenant, "new-one"))
    seen.append(await version(db, tenant))
    assert seen == sorted(set(seen)), f"each write moved the version forward: {seen}"
    other = await tenant_of(db, "other")
    untouched = await version(db, other)
    async with db.writing() as session:
        (await catalog.staff_row(session, tenant, "ann")).weight = 3
    assert await version(db, other) == untouched, "only the changed business moves"
