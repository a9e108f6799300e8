"""``frontdesk user create``, run as a user would: the password comes from stdin, only its argon2id
hash is stored, and the new login works on the dashboard."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from bot.app import prepare_database
from bot.settings import load_settings
from storage import tables as t
from storage import users
from tests.bot.test_cli import demo_config
from tests.conftest import T0, FrozenClock

PASSWORD = "a long enough secret"


def create(config: Path, *args: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "user", "create", "--config", str(config), *args],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=config.parent,
        env=dict(os.environ),
    )


def test_user_create_for_each_role(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    done = create(config, "--email", "Owner@Sunrise.test", "--role", "owner", "--business", "sunrise-clinic")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "created owner owner@sunrise.test"
    assert create(config, "--email", "root@ops.test", "--role", "admin").returncode == 0
    in_sunrise = ("--business", "sunrise-clinic")
    staff = create(config, "--email", "mehta@sunrise.test", "--role", "staff", *in_sunrise, "--staff", "dr-mehta")
    assert staff.returncode == 0, staff.stderr
    assert PASSWORD not in (tmp_path / "demo.db").read_bytes().decode("latin-1")

    refused = [
        create(config, "--email", "x@y.test", "--role", "admin", "--business", "sunrise-clinic"),
        create(config, "--email", "x@y.test", "--role", "owner"),
        create(config, "--email", "x@y.test", "--role", "staff", "--business", "sunrise-clinic"),
        create(config, "--email", "x@y.test", "--role", "owner", "--business", "nope"),
        create(config, "--email", "owner@sunrise.test", "--role", "owner", "--business", "sunrise-clinic"),
        create(config, "--email", "x@y.test", "--role", "owner", "--business", "sunrise-clinic", password="short"),
    ]
    assert [r.returncode for r in refused] == [2] * len(refused), [r.stderr for r in refused]
    assert "no business 'nope'" in refused[3].stderr and "exists" in refused[4].stderr

    async def check() -> None:
        settings = load_settings(str(config))
        clock = FrozenClock(T0)
        db = await prepare_database(settings, clock)
        try:
            async with db.reading() as session:
                rows = {u.email: u for u in await session.scalars(select(t.User))}
            assert set(rows) == {"owner@sunrise.test", "root@ops.test", "mehta@sunrise.test"}
            assert rows["root@ops.test"].tenant_id is None and rows["mehta@sunrise.test"].staff_id is not None
            assert all(u.password_hash.startswith("$argon2id$") for u in rows.values())
            user = await users.authenticate(db, "owner@sunrise.test", PASSWORD, "127.0.0.1", clock(), users.Policy())
            assert user.role == "owner"
        finally:
            await db.dispose()

    asyncio.run(check())
