"""The installed ``frontdesk`` command, run as a user would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def demo_config(tmp_path: Path, port: int = 8080) -> Path:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["database"]["url"] = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    config["server"]["port"] = port
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_migrate_and_token_create(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    assert run("migrate", "--config", str(config), cwd=tmp_path).returncode == 0
    done = run("token", "create", "--business", "sunrise-clinic", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("fd_") and len(token) > 40
    assert token not in (tmp_path / "demo.db").read_bytes().decode("latin-1"), "only the hash is stored"
    missing = run("token", "create", "--business", "nope", "--config", str(config), cwd=tmp_path)
    assert missing.returncode == 2 and "no business 'nope'" in missing.stderr


def test_bad_config_is_a_clear_startup_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("server: {port: eighty}\n")
    done = run("serve", "--config", str(path), cwd=tmp_path)
    assert done.returncode == 2 and "server.port" in done.stderr and "Traceback" not in done.stderr


def test_serve_brings_an_empty_sqlite_file_up_and_answers(tmp_path: Path) -> None:
    port = free_port()
    config = demo_config(tmp_path, port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--config", str(config)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                    body = json.loads(resp.read())
                    break
            except OSError:
                time.sleep(0.1)
        assert body == {"status": "ok", "database": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            assert b"frontdesk_http_requests_total" in resp.read()
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert "serving on" in output


def test_piped_chat_books_an_appointment_with_the_default_config(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    script = "hi\nbook a follow-up visit\n1\nnext monday at 11am\nyes\nAsha Test\n+91 98450 12345\n5\nmy bookings\n"
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat", "--config", str(config)],
        cwd=tmp_path,
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "you> book a follow-up visit" in out
    assert "  1. No preference" in out, "options are numbered and a number selects"
    assert "You're booked! Follow-up visit" in out
    assert "Your upcoming bookings:\n• Follow-up visit on Mon" in out
    assert "+91" not in done.stderr, "no phone numbers in logs"
    import sqlite3

    rows = sqlite3.connect(tmp_path / "demo.db").execute("select status from appointments").fetchall()
    assert rows == [("scheduled",)]
