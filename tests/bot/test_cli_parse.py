"""``frontdesk parse``: one message as an argument, or one per stdin line, read for the first business."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from tests.conftest import demo_business


def config(tmp_path: Path, businesses: list[dict[str, Any]] | None = None) -> str:
    path = tmp_path / "config.yaml"
    document = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'frontdesk.db'}"},
        "businesses": [demo_business()] if businesses is None else businesses,
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["parse", *args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_one_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(
        capsys, "book a check-up with ann tomorrow at 4", "--now", "2026-03-02T09:00", "--config", config(tmp_path)
    )
    assert code == 0
    assert lines == [
        {
            "intent": "book",
            "date": "2026-03-03",
            "time": "16:00",
            "start": "2026-03-03T16:00:00+00:00",
            "service": "checkup",
            "staff": "ann",
            "entities": {},
        }
    ]


def test_tz_overrides_the_business_zone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(
        capsys, "friday 10am", "--now", "2026-03-02T09:00", "--tz", "Asia/Kolkata", "--config", config(tmp_path)
    )
    assert code == 0
    assert (lines[0]["date"], lines[0]["start"]) == ("2026-03-06", "2026-03-06T10:00:00+05:30")


def test_now_with_an_offset_is_read_in_the_business_zone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 23:30 in New York is already Tuesday in the business's UTC: "tomorrow" is Wednesday.
    code, lines, _ = run(capsys, "tomorrow", "--now", "2026-03-02T23:30:00-05:00", "--config", config(tmp_path))
    assert (code, lines[0]["date"], lines[0]["time"]) == (0, "2026-03-04", None)


def test_stdin_one_json_line_per_input_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hi\n3pm EST\n\nbob on friday\n2\n"))
    code, lines, _ = run(capsys, "--now", "2026-03-02T09:00", "--config", config(tmp_path))
    assert code == 0
    assert [line["intent"] for line in lines] == ["greet", "inform", "unknown", "inform", "inform"]
    assert (lines[1]["date"], lines[1]["time"], lines[1]["entities"]) == (
        "2026-03-02",
        "20:00",
        {"tz": "America/New_York"},
    )
    assert (lines[3]["staff"], lines[3]["date"]) == ("bob", "2026-03-06")
    assert lines[4]["entities"] == {"number": 2}


def test_without_businesses_it_reads_in_utc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, "tomorrow at noon", "--now", "2026-03-02T09:00", "--config", config(tmp_path, []))
    assert (code, lines[0]["start"]) == (0, "2026-03-03T12:00:00+00:00")


@pytest.mark.parametrize(("flag", "value", "message"), [("--now", "soon", "--now"), ("--tz", "Mars/Base", "Mars/Base")])
def test_bad_arguments_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    code = main(["parse", "hi", flag, value, "--config", config(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
