"""The python-libjuju peer of the scale benchmark (issue 5).

What a user would otherwise script: read the desired secrets (the JSON file jso-bench
writes: {"connection": <emulator connection.json>, "secrets": [{model, label, data}]}),
create the missing ones with Model.add_secret, then check every one for drift with
Model.list_secrets(show_secrets=True) (one listing per model, compared per secret).

Prints one JSON line: wall time, the emulator's own call counts for the run (read over
the control websocket, so they include logins and libjuju's own housekeeping calls),
round trips (all calls), created / drifted counts. No value is printed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import sys
import time
from collections import defaultdict

import websockets
from juju.model import Model


async def control(info: dict, request: str) -> dict:
    ctx = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cadata=info["ca-cert"])
    ctx.check_hostname = False
    async with asyncio.timeout(30):
        async with websockets.connect(f"wss://{info['endpoint']}/emulator/control", ssl=ctx,
                                      max_size=None) as ws:
            await ws.send(json.dumps({"request-id": 1, "type": "Emulator", "version": 1,
                                      "request": request, "params": {}}))
            reply = json.loads(await ws.recv())
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return reply.get("response") or {}


def flatten(counts) -> dict[str, int]:
    # The response shape: {"Facade.Method": n} or nested; normalise to flat.
    out: dict[str, int] = {}
    if isinstance(counts, dict):
        for k, v in counts.items():
            if isinstance(v, int):
                out[k] = v
            elif isinstance(v, dict):
                for k2, v2 in flatten(v).items():
                    out[f"{k}.{k2}"] = v2
    return out


async def main(path: str) -> None:
    spec = json.load(open(path))
    info = spec["connection"]
    admin = next(u for u in info["users"] if u["username"] == "admin")
    uuid_of = {m["name"]: m["uuid"] for m in info["models"]}
    by_model: dict[str, list[dict]] = defaultdict(list)
    for s in spec["secrets"]:
        by_model[s["model"]].append(s)

    before = flatten(await control(info, "CallCounts"))
    t0 = time.monotonic()
    created = drifted = checked = 0
    for name, wanted in by_model.items():
        model = Model()
        await asyncio.wait_for(model.connect(endpoint=info["endpoint"], uuid=uuid_of[name],
                                             username="admin", password=admin["password"],
                                             cacert=info["ca-cert"], retries=0), 60)
        try:
            existing = {r.label for r in await model.list_secrets()}
            for s in wanted:
                if s["label"] in existing:
                    continue
                await model.add_secret(s["label"], [f"{k}={v}" for k, v in s["data"].items()])
                created += 1
            listing = {r.label: r for r in await model.list_secrets(show_secrets=True)}
            for s in wanted:
                checked += 1
                r = listing.get(s["label"])
                got = None
                if r is not None and r.value is not None and r.value.data:
                    got = {k: base64.b64decode(v).decode() for k, v in r.value.data.items()}
                if got != s["data"]:
                    drifted += 1
        finally:
            await model.disconnect()
    wall = time.monotonic() - t0
    after = flatten(await control(info, "CallCounts"))
    calls = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}
    print(json.dumps({"wall_secs": wall, "round_trips": sum(calls.values()), "calls": calls,
                      "created": created, "checked": checked, "drifted": drifted}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
