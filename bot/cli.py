"""The ``frontdesk`` command line. Settings are loaded here, once, and passed down."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any

from aiohttp import web

from bot import logs
from bot.context import system_clock
from bot.settings import Settings, load_settings
from core.errors import ConfigError, FrontdeskError, InvalidInput
from storage import catalog, migrate, tokens
from storage.engine import create_database


def _secrets(settings: Settings) -> list[str]:
    key = settings.anthropic.api_key
    found = [key.get_secret_value()] if key else []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, str) and any(w in k for w in ("token", "secret", "key", "password")):
                    found.append(v)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(settings.model_dump(mode="python", exclude={"anthropic"}))
    return found


def cmd_serve(settings: Settings, _args: argparse.Namespace) -> int:
    from bot.app import create_app

    app = create_app(settings)
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        access_log=None,
        print=lambda _msg: print(
            f"frontdesk serving on http://{settings.server.host}:{settings.server.port}"
            f"  (database: {settings.database.url.split(':')[0]})",
            flush=True,
        ),
    )
    return 0


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    async def run() -> None:
        db = create_database(settings.database.url, pool_size=1)
        try:
            await migrate.upgrade(db.engine)
        finally:
            await db.dispose()

    asyncio.run(run())
    print("database is at the newest schema")
    return 0


def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    from bot import terminal

    return terminal.run(settings, args.agent, args.sender, args.tz)


def cmd_parse(settings: Settings, args: argparse.Namespace) -> int:
    """The rules engine's reading of TEXT, or of each stdin line, as one JSON object per message."""
    import json
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from bot.dialogue.reading import Reader, reader_for
    from core.errors import InvalidInput
    from core.timezones import canonical_zone_name

    business = settings.businesses[0] if settings.businesses else None
    zone = canonical_zone_name(args.tz) if args.tz else business.timezone if business else "UTC"
    reader = reader_for(business, timezone=zone) if business else Reader([], [], timezone=zone)
    now = system_clock().astimezone(ZoneInfo(zone))
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            raise InvalidInput(f"--now: not an ISO 8601 date-time: {args.now!r}") from None
        if now.tzinfo is None:
            now = now.replace(tzinfo=ZoneInfo(zone))  # wall-clock time in the zone

    def show(text: str) -> str:
        return json.dumps(reader.read(text, now).to_json(), ensure_ascii=False)

    if args.text is not None:
        print(show(args.text))
        return 0
    interactive = sys.stdin.isatty()
    for line in sys.stdin:
        sys.stdout.write(show(line.rstrip("\r\n")) + "\n")
        if interactive:
            sys.stdout.flush()
    return 0


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import prepare_database

    async def run() -> str:
        db = await prepare_database(settings, system_clock)
        try:
            async with db.writing() as session:
                business = await catalog.business_by_slug(session, args.business)
                return await tokens.create(session, business.id, system_clock(), name=args.name or "")
        finally:
            await db.dispose()

    print(asyncio.run(run()))
    return 0


def _day_arg(value: str | None, name: str) -> date | None:
    from core.timezones import parse_day

    return parse_day(value, field=name) if value else None


def cmd_grades(settings: Settings, args: argparse.Namespace) -> int:
    """The grade table: one row per agent (every business, or ``--agent``), from the roll-ups."""
    from rich.console import Console
    from rich.table import Table

    from bot.app import prepare_database
    from storage import insights

    async def run() -> list[dict[str, Any]]:
        db = await prepare_database(settings, system_clock)
        try:
            async with db.reading() as session:
                return await insights.grade_table(
                    session,
                    start=_day_arg(args.date_from, "--from"),
                    end=_day_arg(args.date_to, "--to"),
                    now=system_clock(),
                    agent_slug=args.agent,
                )
        finally:
            await db.dispose()

    rows = asyncio.run(run())
    table = Table(title="Agent grades")
    for column in ("business", "agent", "grade", "score", "quality", "conversion", "efficiency", "conversations"):
        table.add_column(column, justify="right" if column not in ("business", "agent") else "left")

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for row in rows:
        parts = row["gradeComponents"]
        table.add_row(
            row["business"],
            row["agentSlug"],
            row["performanceGrade"],
            num(row["performanceScore"]),
            num(parts["quality"]),
            num(parts["conversion"]),
            num(parts["efficiency"]),
            str(row["conversationMetrics"]["totalConversations"]),
        )
    Console(width=120).print(table)
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    """CSV of one kind of record for a date range, with a progress bar on stderr."""
    import csv
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from bot.app import prepare_database
    from storage import catalog, insights

    if args.kind not in insights.EXPORT_KINDS:
        raise FrontdeskError(f"KIND: one of {', '.join(insights.EXPORT_KINDS)}")
    if not settings.businesses and not args.business:
        raise FrontdeskError("--business: no business is configured")

    async def run() -> int:
        db = await prepare_database(settings, system_clock)
        try:
            async with db.reading() as session:
                slug = args.business or settings.businesses[0].slug
                business = await catalog.business_by_slug(session, slug)
                tz = await insights.zone_of(session, business.id)
                first, last = insights.window(
                    _day_arg(args.date_from, "--from"), _day_arg(args.date_to, "--to"), system_clock(), tz
                )
                count = await insights.export_count(session, business.id, args.kind, first, last)
                written = 0
                with (
                    Path(args.out).open("w", newline="", encoding="utf-8") as out,  # noqa: ASYNC230 - a CLI, nothing else runs
                    Progress(
                        TextColumn(f"exporting {args.kind}"),
                        BarColumn(),
                        MofNCompleteColumn(),
                        TimeRemainingColumn(),
                        console=_stderr_console(),
                    ) as progress,
                ):
                    task = progress.add_task(args.kind, total=count)
                    writer = csv.writer(out)
                    async for row in insights.export_rows(session, business.id, args.kind, first, last):
                        writer.writerow(row)
                        written += 1
                        if written > 1:
                            progress.advance(task)
                return written - 1
        finally:
            await db.dispose()

    rows = asyncio.run(run())
    print(f"wrote {rows} {args.kind} rows to {args.out}")
    return 0


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _read_password(prompt: str = "Password: ") -> str:
    """From the terminal (asked twice, not echoed), else the first line of stdin (scripts, tests)."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass(prompt)
        if getpass.getpass("Again: ") != first:
            raise InvalidInput("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_user_create(settings: Settings, args: argparse.Namespace) -> int:
    """A dashboard login; only the argon2id hash of the password is stored."""
    from bot.app import prepare_database
    from storage import users

    if args.role == "admin" and args.business:
        raise InvalidInput("an admin sees every business: leave out --business")
    if args.role != "admin" and not args.business:
        raise InvalidInput(f"a {args.role} needs --business")
    if args.role == "staff" and not args.staff:
        raise InvalidInput("a staff user needs --staff (their staff slug)")
    password = _read_password()

    async def run() -> users.User:
        db = await prepare_database(settings, system_clock)
        try:
            async with db.writing() as session:
                tenant_id = staff_id = None
                if args.business:
                    tenant_id = (await catalog.business_by_slug(session, args.business)).id
                if args.staff:
                    if tenant_id is None:
                        raise InvalidInput("--staff needs --business")
                    staff_id = (await catalog.staff_row(session, tenant_id, args.staff)).id
                return await users.create(
                    session,
                    email=args.email,
                    password=password,
                    role=args.role,
                    now=system_clock(),
                    tenant_id=tenant_id,
                    staff_id=staff_id,
                )
        finally:
            await db.dispose()

    user = asyncio.run(run())
    print(f"created {user.role} {user.email}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frontdesk", description="A business's front desk that lives in chat.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", help="config file (default: $FRONTDESK_CONFIG, else ./config.yaml)")
        return p

    add("serve", "run the HTTP server (webhooks, web chat, API, dashboard)").set_defaults(run=cmd_serve)
    add("migrate", "bring the database schema up to date").set_defaults(run=cmd_migrate)
    chat = add("chat", "talk to an agent in the terminal (reads stdin line by line; works piped)")
    chat.add_argument("--agent", help="agent slug (default: the first configured agent)")
    chat.add_argument("--sender", help="who you are to the agent (default: terminal:<user>); same sender, same chat")
    chat.add_argument("--tz", help="your time zone, e.g. Europe/London (default: the business's)")
    chat.set_defaults(run=cmd_chat)
    parse = add("parse", "print the rules engine's reading of TEXT (or of each stdin line) as JSON")
    parse.add_argument("text", nargs="?", help="the message (default: one message per stdin line)")
    parse.add_argument("--now", help="ISO date-time to read relative dates from (default: now; no offset: in --tz)")
    parse.add_argument("--tz", help="time zone to read in (default: the first business's)")
    parse.set_defaults(run=cmd_parse)
    grades = add("grades", "print the agents' grade table (from the insights roll-ups)")
    grades.add_argument("--agent", help="only this agent (slug)")
    grades.add_argument("--from", dest="date_from", help="first local date YYYY-MM-DD (default: 30 days ago)")
    grades.add_argument("--to", dest="date_to", help="last local date YYYY-MM-DD (default: today)")
    grades.set_defaults(run=cmd_grades)
    export = add("export", "write a CSV export (conversations, appointments, purchases, customers)")
    export.add_argument("kind", help="conversations | appointments | purchases | customers")
    export.add_argument("--out", required=True, help="the CSV file to write")
    export.add_argument("--business", help="business slug (default: the first configured)")
    export.add_argument("--from", dest="date_from", help="first local date YYYY-MM-DD (default: 30 days ago)")
    export.add_argument("--to", dest="date_to", help="last local date YYYY-MM-DD (default: today)")
    export.set_defaults(run=cmd_export)
    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="token_command", required=True)
    create = token.add_parser("create", help="print a new API token for a business (only its hash is stored)")
    create.add_argument("--config")
    create.add_argument("--business", required=True, help="business slug")
    create.add_argument("--name", help="a label for the token")
    create.set_defaults(run=cmd_token_create)
    user = sub.add_parser("user", help="dashboard users").add_subparsers(dest="user_command", required=True)
    new_user = user.add_parser("create", help="add a dashboard login (password from the prompt or stdin)")
    new_user.add_argument("--config")
    new_user.add_argument("--email", required=True)
    new_user.add_argument("--role", required=True, choices=["admin", "owner", "staff"])
    new_user.add_argument("--business", help="business slug (owner and staff)")
    new_user.add_argument("--staff", help="the staff member's slug (staff only)")
    new_user.set_defaults(run=cmd_user_create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"frontdesk: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.logging.level, json_format=settings.logging.json_format, secrets=_secrets(settings))
    try:
        return int(args.run(settings, args))
    except (ConfigError, FrontdeskError) as exc:
        print(f"frontdesk: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
