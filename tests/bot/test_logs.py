from __future__ import annotations

import logging

import pytest

from bot.logs import RedactingFilter


@pytest.fixture
def captured() -> tuple[logging.Logger, list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(RedactingFilter(secrets=["s3cr3t-app-value"]))
    logger = logging.getLogger("test.redaction")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, records


def text_of(record: logging.LogRecord) -> str:
    return record.getMessage() + (record.exc_text or "")


def test_phone_numbers_tokens_and_secrets_are_scrubbed(
    captured: tuple[logging.Logger, list[logging.LogRecord]],
) -> None:
    logger, records = captured
    logger.info("booked for %s via %s", "+1 (415) 555-0101", "+919876543210")
    logger.info("auth header Authorization: Bearer abc.def.ghi and api token fd_abcdefghijklmnopqrstu")
    logger.info("calling https://api.telegram.org/bot123456789:AAbbCCddEEffGGhhIIjjKKllMM/sendMessage")
    logger.info("config secret=%s", "s3cr3t-app-value")
    joined = "\n".join(text_of(r) for r in records)
    for leaked in ("415", "9876543210", "abc.def.ghi", "fd_abcdefghij", "AAbbCCdd", "s3cr3t-app-value"):
        assert leaked not in joined, joined
    assert "[phone]" in joined


def test_tracebacks_are_scrubbed_too(captured: tuple[logging.Logger, list[logging.LogRecord]]) -> None:
    logger, records = captured
    try:
        raise ValueError("customer +14155550101 failed")
    except ValueError:
        logger.exception("boom")
    assert "4155550101" not in text_of(records[-1]) and "ValueError" in text_of(records[-1])


def test_message_bodies_only_at_debug(captured: tuple[logging.Logger, list[logging.LogRecord]]) -> None:
    logger, records = captured
    logger.info("inbound message", extra={"body": "my card number is ..."})
    logger.debug("inbound message", extra={"body": "hello there"})
    assert records[0].body == "[omitted]"  # type: ignore[attr-defined]
    assert records[1].body == "hello there"  # type: ignore[attr-defined]


def test_dates_and_ids_are_not_mistaken_for_phones(
    captured: tuple[logging.Logger, list[logging.LogRecord]],
) -> None:
    logger, records = captured
    logger.info("booking at 2026-03-02T10:00:00+00:00 took 12.5 ms")
    assert "2026-03-02T10:00:00" in text_of(records[0])


def test_timestamps_are_not_mistaken_for_phone_numbers(
    captured: tuple[logging.Logger, list[logging.LogRecord]],
) -> None:
    logger, records = captured
    logger.info("next run at: 2026-11-21 18:10:46 UTC; on 2026-11-21; call 415-555-0101 or +44 20 7946 0958")
    [record] = records
    assert text_of(record) == "next run at: 2026-11-21 18:10:46 UTC; on 2026-11-21; call [phone] or [phone]"
