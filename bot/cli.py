"""The ``frontdesk`` command line. Settings are loaded here, once, and passed down."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

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
