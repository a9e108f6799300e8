"""What the fake payment providers share: a loopback server, recorded calls, injected faults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Fault:
    path_prefix: str
    status: int
    times: int
    after: bool = False  # do the work, then lose the answer (the client sees only ``status``)


class _Call(Protocol):
    method: str
    path: str


class LoopbackProvider:
    """Mixed into a fake provider dataclass that has ``requests``, ``faults`` and ``_server`` fields
    and a ``routes(app)`` method."""

    requests: list[Any]
    faults: list[Fault]
    _server: TestServer | None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raise NotImplementedError

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return str(self._server.make_url("")).rstrip("/")

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    def fail(self, path_prefix: str, status: int = 500, times: int = 1, *, after: bool = False) -> None:
        """The next ``times`` requests under ``path_prefix`` answer ``status``: before doing anything,
        or (``after``) once the work is done."""
        self.faults.append(Fault(path_prefix, status, times, after))

    def calls(self, method: str, path_prefix: str) -> list[Any]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def faults_for(self, path: str) -> tuple[Fault | None, Fault | None]:
        """(a fault that answers before the work, a fault that answers after it) for this request."""
        late = None
        for fault in self.faults:
            if fault.times > 0 and path.startswith(fault.path_prefix):
                fault.times -= 1
                if not fault.after:
                    return fault, None
                late = fault
        return None, late
