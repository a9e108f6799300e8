"""Crash points for the reliability tests: ``testing.fault_at`` names one, and the process kills
itself there with SIGKILL (no cleanup, no flush), as a power cut or an OOM kill would."""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

POINTS = frozenset({"after_inbox_commit", "before_claim", "after_turn_commit", "after_provider_accept"})


class Faults:
    def __init__(self, point: str | None = None) -> None:
        if point is not None and point not in POINTS:
            raise ValueError(f"unknown fault point {point!r}; one of {', '.join(sorted(POINTS))}")
        self.point = point

    def crash_if(self, point: str) -> None:
        if point == self.point:
            log.warning("fault injection: killing the process at %s", point)
            os.kill(os.getpid(), signal.SIGKILL)
