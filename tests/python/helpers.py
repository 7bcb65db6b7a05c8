"""Shared helpers: python-libjuju connections with bounded waits, a raw websocket
client, and small utilities."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import uuid as uuidlib
from typing import Any, AsyncIterator

import websockets
from juju.controller import Controller
from juju.model import Model

CONNECT_TIMEOUT = 20.0
CALL_TIMEOUT = 15.0

SECRET_URI_RE = re.compile(r"^secret:[0-9a-v]{19}[0g]$")
BACKEND_ID_RE = re.compile(r"^[0-9a-f]{24}$")
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

# A vault endpoint on loopback: should the emulator ever really dial it, the traffic
# stays on this machine. Reachability is driven through the control channel.
VAULT_ENDPOINT = "https://127.0.0.1:8200"


class ControlError(Exception):
    """An error answer on the emulator's control channel."""

    def __init__(self, message: str, code: str | None):
        super().__init__(f"{message} ({code})")
        self.message = message
        self.code = code


def unique(prefix: str = "s") -> str:
    return f"{prefix}-{uuidlib.uuid4().hex[:10]}"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def checksum(data: dict[str, str]) -> str:
    """latest-revision-checksum per juju-api.md §5.6 (SHA-256 of compact sorted JSON)."""
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


async def bounded(aw, timeout: float = CALL_TIMEOUT):
    return await asyncio.wait_for(aw, timeout)


@contextlib.asynccontextmanager
async def model_conn(emu, user: str = "admin", password: str | None = None,
                     uuid: str | None = None) -> AsyncIterator[Model]:
    """Model().connect(...) the way the Juju docs' Python examples do."""
    model = Model()
    try:
        await bounded(
            model.connect(
                endpoint=emu.endpoint,
                uuid=uuid or emu.model_uuid,
                username=user,
                password=emu.password(user) if password is None else password,
                cacert=emu.cacert,
                retries=0,
            ),
            CONNECT_TIMEOUT,
        )
        yield model
    finally:
        with contextlib.suppress(Exception):
            await bounded(model.disconnect(), 10)


@contextlib.asynccontextmanager
async def controller_conn(emu, user: str = "admin",
                          password: str | None = None) -> AsyncIterator[Controller]:
    controller = Controller()
    try:
        await bounded(
            controller.connect(
                endpoint=emu.endpoint,
                username=user,
                password=emu.password(user) if password is None else password,
                cacert=emu.cacert,
                retries=0,
            ),
            CONNECT_TIMEOUT,
        )
        yield controller
    finally:
        with contextlib.suppress(Exception):
            await bounded(controller.disconnect(), 10)


async def user_secrets(model: Model, emu, show: bool = False) -> list:
    """list_secrets filtered to model-owned secrets (pitfall 6: unfiltered lists
    include charm-owned secrets)."""
    return await bounded(
        model.list_secrets(filter={"owner-tag": f"model-{emu.model_uuid}"}, show_secrets=show)
    )


async def secret_by_label(model: Model, emu, label: str, show: bool = False):
    found = [s for s in await user_secrets(model, emu, show) if s.label == label]
    assert len(found) <= 1, f"label {label!r} is not unique: {[s.uri for s in found]}"
    return found[0] if found else None


async def backend_by_name(controller: Controller, name: str, reveal: bool = False):
    res = await bounded(controller.list_secret_backends(reveal=reveal))
    found = [r for r in res.results if r.result.name == name]
    return found[0] if found else None


class RawConn:
    """A bare websocket RPC client for envelope-level checks."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 1

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, emu, path: str = "/api") -> AsyncIterator["RawConn"]:
        url = f"wss://{emu.endpoint}{path}"
        async with asyncio.timeout(CONNECT_TIMEOUT):
            ws = await websockets.connect(url, ssl=emu.ssl_context(), max_size=64 << 20)
        try:
            yield cls(ws)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self) -> tuple[dict, str]:
        text = await asyncio.wait_for(self.ws.recv(), CALL_TIMEOUT)
        return json.loads(text), text

    async def call(self, facade: str, version: int, request: str,
                   params: Any = None, *, request_id: int | None = None,
                   omit_params: bool = False, extra: dict | None = None) -> tuple[dict, str]:
        rid = request_id if request_id is not None else self.next_id
        self.next_id = max(self.next_id, rid) + 1
        frame: dict[str, Any] = {"request-id": rid, "type": facade, "version": version,
                                 "request": request}
        if not omit_params:
            frame["params"] = {} if params is None else params
        if extra:
            frame.update(extra)
        await self.send(frame)
        reply, text = await self.recv()
        assert reply.get("request-id") == rid, f"request-id not echoed: sent {rid}, got {reply}"
        return reply, text

    async def login(self, emu, user: str = "admin", password: str | None = None) -> dict:
        reply, _ = await self.call(
            "Admin", 3, "Login",
            {"auth-tag": f"user-{user}",
             "credentials": emu.password(user) if password is None else password,
             "client-version": "3.6.1.3"},
        )
        return reply
