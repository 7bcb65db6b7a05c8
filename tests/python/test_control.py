"""The emulator's fault/control channel (wss://ENDPOINT/emulator/control), reconnection
of python-libjuju after dropped connections, and persistence across restarts."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets
from juju.errors import JujuAPIError, JujuError

from helpers import (
    VAULT_ENDPOINT,
    ControlError,
    RawConn,
    b64,
    backend_by_name,
    bounded,
    controller_conn,
    model_conn,
    secret_by_label,
    unique,
    user_secrets,
)


async def _add_vault(emu, controller, name: str) -> None:
    try:
        await emu.control("SetBackendReachable", {"name": name, "reachable": True})
    except ControlError:
        pass  # an emulator may only know names once added; reachable is the default then
    res = await bounded(controller.add_secret_backends(
        "", name, "vault", {"endpoint": VAULT_ENDPOINT, "token": "s.t"}))
    assert [r.error for r in res.results] == [None]


async def _drop(emu) -> None:
    try:
        await emu.control("DropConnections", {})
    except (websockets.ConnectionClosed, ControlError) as e:
        if isinstance(e, ControlError):
            raise


async def _eventually(coro_fn, timeout: float = 15.0):
    """Retry coro_fn until it succeeds (bounded); returns its result."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            return await asyncio.wait_for(coro_fn(), 3)
        except Exception as e:  # noqa: BLE001 - any failure while reconnecting
            last = e
            await asyncio.sleep(0.2)
    raise AssertionError(f"did not recover within {timeout}s; last error: {last!r}")


# ---------------------------------------------------------------------------- channel


async def test_control_envelope_and_call_counts(emulator):
    async with RawConn.open(emulator, "/api") as c:
        await c.login(emulator)
        await c.call("Pinger", 1, "Ping")
    counts = await emulator.control("CallCounts", {})
    assert isinstance(counts, dict), counts
    assert json.dumps(counts)  # serialisable, non-null


async def test_control_unknown_request(emulator):
    with pytest.raises(ControlError) as ei:
        await emulator.control("NoSuchControl", {})
    assert ei.value.message


async def test_rpc_paths_do_not_serve_the_control_facade(emulator):
    # On /api the controller-facade restriction runs first (juju-api.md §1.1), so any
    # facade outside the controller set, unknown ones included, is "not supported".
    async with RawConn.open(emulator, "/api") as c:
        await c.login(emulator)
        reply, _ = await c.call("Emulator", 1, "CallCounts", {})
        assert reply.get("error") == 'facade "Emulator" not supported for controller API connection'
        assert reply.get("error-code") == "not supported"
    async with RawConn.open(emulator, f"/model/{emulator.model_uuid}/api") as c:
        await c.login(emulator)
        reply, _ = await c.call("Emulator", 1, "CallCounts", {})
        assert reply.get("error") == 'unknown object type "Emulator"'
        assert reply.get("error-code") == "not implemented"


# ---------------------------------------------------------------------------- FailNext


async def test_fail_next_list_secrets(emulator):
    async with model_conn(emulator) as model:
        await user_secrets(model, emulator)  # works
        await emulator.control("FailNext", {"facade": "Secrets", "method": "ListSecrets",
                                            "count": 2, "code": "not found",
                                            "message": "injected failure"})
        for _ in range(2):
            with pytest.raises(JujuAPIError) as ei:
                await user_secrets(model, emulator)
            assert ei.value.message == "injected failure"
            assert ei.value.error_code == "not found"
            assert ei.value.response == {}
        await user_secrets(model, emulator)  # count exhausted


async def test_fail_next_bulk_call_and_empty_code(emulator):
    name = unique("fn")
    async with model_conn(emulator) as model:
        await emulator.control("FailNext", {"facade": "Secrets", "method": "CreateSecrets",
                                            "count": 1, "code": "", "message": "boom"})
        with pytest.raises(JujuAPIError) as ei:
            await bounded(model.add_secret(name, ["password=x"]))
        assert ei.value.message == "boom"
        assert ei.value.error_code is None, "an empty error-code must be omitted"
        assert await secret_by_label(model, emulator, name) is None, "a failed call has no effect"
        await bounded(model.add_secret(name, ["password=x"]))
        assert await secret_by_label(model, emulator, name) is not None


async def test_fail_next_controller_facade(emulator):
    async with controller_conn(emulator) as controller:
        await emulator.control("FailNext", {"facade": "SecretBackends",
                                            "method": "ListSecretBackends", "count": 1,
                                            "code": "unauthorized access",
                                            "message": "permission denied"})
        with pytest.raises(JujuAPIError) as ei:
            await bounded(controller.list_secret_backends())
        assert ei.value.error_code == "unauthorized access"
        res = await bounded(controller.list_secret_backends())
        assert "internal" in [r.result.name for r in res.results]


# ---------------------------------------------------------------------------- SetDelay


async def test_set_delay(emulator):
    async with RawConn.open(emulator, "/api") as c:
        await c.login(emulator)
        await emulator.control("SetDelay", {"milliseconds": 400})
        try:
            t0 = time.monotonic()
            reply, _ = await c.call("Pinger", 1, "Ping")
            slow = time.monotonic() - t0
        finally:
            await emulator.control("SetDelay", {"milliseconds": 0})
        assert reply["response"] == {}
        assert slow >= 0.35, f"Ping took {slow:.3f}s with a 400 ms delay"

        # Cleared, the delay no longer applies: shown by order, not by a time bound. A
        # Ping sent while the delay is on is still held when a Ping sent after clearing
        # it is answered.
        await emulator.control("SetDelay", {"milliseconds": 2000})
        try:
            pings = (await emulator.control("CallCounts", {})).get("Pinger.Ping", 0)
            await c.send({"request-id": 901, "type": "Pinger", "version": 1,
                          "request": "Ping", "params": {}})
            # The held request has reached the emulator before the delay is cleared.
            deadline = time.monotonic() + 10
            while (await emulator.control("CallCounts", {})).get("Pinger.Ping", 0) == pings:
                assert time.monotonic() < deadline, "the held Ping never arrived"
                await asyncio.sleep(0.01)
        finally:
            await emulator.control("SetDelay", {"milliseconds": 0})
        await c.send({"request-id": 902, "type": "Pinger", "version": 1,
                      "request": "Ping", "params": {}})
        first, _ = await c.recv()
        second, _ = await c.recv()
        assert [first["request-id"], second["request-id"]] == [902, 901]


# ---------------------------------------------------------------------------- DropConnections


async def test_drop_connections_closes_raw_sockets(emulator):
    async with RawConn.open(emulator, "/api") as c:
        await c.login(emulator)
        await _drop(emulator)
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(10):
                while True:  # any pending/next frame must end in a close
                    await c.ws.recv()
    # new connections are accepted afterwards
    async with RawConn.open(emulator, "/api") as c:
        assert "error" not in await c.login(emulator)


async def test_drop_connections_libjuju_reconnects(emulator):
    name = unique("drop")
    async with model_conn(emulator) as model, controller_conn(emulator) as controller:
        await bounded(model.add_secret(name, ["password=one"]))
        await _drop(emulator)
        s = await _eventually(lambda: secret_by_label(model, emulator, name))
        assert s is not None and s.latest_revision == 1
        res = await _eventually(lambda: controller.list_secret_backends())
        assert "internal" in [r.result.name for r in res.results]
        # writes work on the new connection too
        await _eventually(lambda: model.update_secret(name, ["password=two"], new_name=name))
        s = await secret_by_label(model, emulator, name, show=True)
        assert s.latest_revision == 2 and s.value.data == {"password": b64("two")}


# ---------------------------------------------------------------------------- reachability


async def test_unreachable_backend(fresh_emulator):
    emu = fresh_emulator
    vault = unique("uv")
    secret = unique("onuv")
    async with controller_conn(emu) as controller, model_conn(emu) as model:
        await _add_vault(emu, controller, vault)
        await bounded(model.set_config({"secret-backend": vault}))
        await bounded(model.add_secret(secret, ["password=one"]))

        await emu.control("SetBackendReachable", {"name": vault, "reachable": False})
        b = await backend_by_name(controller, vault)
        assert b.status == "error"
        assert b.message, "a failed ping carries its text in `message`"
        assert b.error is None
        internal = await backend_by_name(controller, "internal")
        assert internal.status == "active"

        # content on the unreachable backend: per-secret value.error, call succeeds
        s = await secret_by_label(model, emu, secret, show=True)
        assert s is not None and s.latest_revision == 1
        assert s.value is not None and s.value.error is not None and s.value.error.message
        assert not s.value.data

        # Writes fetch the active backend first (juju-api.md §10.3): the whole call
        # fails, creates and updates alike, even an update of the description only.
        with pytest.raises(JujuAPIError) as ei:
            await bounded(model.add_secret(unique("onuv2"), ["password=two"]))
        assert ei.value.message.startswith("backend not reachable"), ei.value.message
        with pytest.raises(JujuAPIError) as ei:
            await bounded(model.update_secret(secret, new_name=secret, info="only this"))
        assert ei.value.message.startswith("backend not reachable"), ei.value.message
        s = await secret_by_label(model, emu, secret)
        assert s.description != "only this" and s.latest_revision == 1

        # Update pings unless forced
        with pytest.raises(JujuError):
            await bounded(controller.update_secret_backends(vault, config={"token": "s.u"}))
        res = await bounded(
            controller.update_secret_backends(vault, config={"token": "s.u"}, force=True))
        assert [r.error for r in res.results] == [None]

        # ModelSet pings the named backend
        await bounded(model.set_config({"secret-backend": "auto"}))
        with pytest.raises(JujuAPIError) as ei:
            await bounded(model.set_config({"secret-backend": vault}))
        assert ei.value.message.startswith(f'cannot ping backend "{vault}": '), ei.value.message

        await emu.control("SetBackendReachable", {"name": vault, "reachable": True})
        b = await backend_by_name(controller, vault)
        assert b.status == "active" and not b.message


async def _remove_raw(emu, uri: str) -> dict:
    async with RawConn.open(emu, f"/model/{emu.model_uuid}/api") as c:
        await c.login(emu)
        reply, _ = await c.call("Secrets", 2, "RemoveSecrets",
                                {"args": [{"uri": uri, "label": ""}]})
    (item,) = reply["response"]["results"]
    return item


async def test_remove_secrets_deletes_from_the_external_backend_first(fresh_emulator):
    # juju-api.md §10.2: an item fails, and its secret stays, when its content cannot be
    # deleted from the backend that holds it, or when the model's backend is gone.
    emu = fresh_emulator
    vault = unique("rmv")
    held = unique("held")
    internal = unique("internal")
    async with controller_conn(emu) as controller, model_conn(emu) as model:
        internal_uri = await bounded(model.add_secret(internal, ["password=one"]))
        await _add_vault(emu, controller, vault)
        await bounded(model.set_config({"secret-backend": vault}))
        uri = await bounded(model.add_secret(held, ["password=one"]))
        vault_id = (await backend_by_name(controller, vault)).id_

        # Unreachable vault: Juju's wording, the revision ID is "<id>-<revision>".
        await emu.control("SetBackendReachable", {"name": vault, "reachable": False})
        item = await _remove_raw(emu, uri)
        xid = uri.removeprefix("secret:")
        assert item["error"]["message"].startswith(
            f'cannot remove revision "{xid}-1" from secret backend "{vault}": '
        ), item
        assert await secret_by_label(model, emu, held) is not None
        await emu.control("SetBackendReachable", {"name": vault, "reachable": True})

        # The model's backend force-removed: no secret of the model can be removed.
        res = await bounded(controller.remove_secret_backends(vault, force=True))
        assert [r.error for r in res.results] == [None]
        for u in (uri, internal_uri):
            item = await _remove_raw(emu, u)
            assert item["error"] == {
                "message": f'getting configured secrets providers: secret backend "{vault}" '
                           'not found',
                "code": "not found",
            }
        # Nor can any value be read (juju-api.md §10.8).
        for label in (held, internal):
            s = await secret_by_label(model, emu, label, show=True)
            assert s.value.error.message == f'secret backend "{vault}" not found', s.value

        # Back on auto, the revisions of the removed backend stay there (their content
        # is gone) and cannot be removed; a secret stored internally can.
        await bounded(model.set_config({"secret-backend": "auto"}))
        s = await secret_by_label(model, emu, held, show=True)
        assert [r.backend_name for r in s.revisions] == ["unknown"]
        assert s.value.error.message.startswith(
            f'external secret backend "{vault_id}", have '), s.value
        item = await _remove_raw(emu, uri)
        assert item["error"] == {"message": f'backend "{vault_id}" not found',
                                 "code": "not found"}
        assert await secret_by_label(model, emu, held) is not None
        fresh = await bounded(model.add_secret(unique("fresh"), ["password=one"]))
        assert await _remove_raw(emu, fresh) == {}


async def test_secret_backend_change_drains_asynchronously(fresh_emulator):
    # juju-api.md §10.1: ModelSet only validates; the revisions stay on the old backend
    # (listing, num-secrets, the in-use refusal) until the drain moves them.
    emu = fresh_emulator
    vault = unique("drain")
    label = unique("drained")
    async with controller_conn(emu) as controller, model_conn(emu) as model:
        await _add_vault(emu, controller, vault)
        await bounded(model.set_config({"secret-backend": vault}))
        await bounded(model.add_secret(label, ["password=one"]))
        await emu.control("SetDrainDelay", {"milliseconds": 1500})
        try:
            await bounded(model.set_config({"secret-backend": "auto"}))
            s = await secret_by_label(model, emu, label)
            assert [r.backend_name for r in s.revisions] == [vault]
            b = await backend_by_name(controller, vault)
            assert b.num_secrets == 1
            with pytest.raises(JujuError) as ei:
                await bounded(controller.remove_secret_backends(vault))
            assert ei.value.errors == [
                "removing backend with 1 stored secret revisions not supported"]

            deadline = time.monotonic() + 10
            while [r.backend_name for r in
                   (await secret_by_label(model, emu, label)).revisions] != ["internal"]:
                assert time.monotonic() < deadline, "the drain never ran"
                await asyncio.sleep(0.1)
            b = await backend_by_name(controller, vault)
            assert b.num_secrets == 0
            res = await bounded(controller.remove_secret_backends(vault))
            assert [r.error for r in res.results] == [None]
        finally:
            await emu.control("SetDrainDelay", {"milliseconds": 0})


async def test_add_unreachable_backend_is_refused(emulator):
    name = unique("down")
    try:
        await emulator.control("SetBackendReachable", {"name": name, "reachable": False})
    except ControlError as e:
        pytest.skip(f"emulator cannot preset reachability of a not-yet-added backend: {e}")
    async with controller_conn(emulator) as controller:
        with pytest.raises(JujuError) as ei:
            await bounded(controller.add_secret_backends(
                "", name, "vault", {"endpoint": VAULT_ENDPOINT}))
        assert ei.value.errors and ei.value.errors[0]
        assert await backend_by_name(controller, name) is None


# ---------------------------------------------------------------------------- AddApplication


async def test_add_application_then_grant(emulator):
    app = unique("app")
    name = unique("ga")
    async with model_conn(emulator) as model:
        await bounded(model.add_secret(name, ["password=one"]))
        with pytest.raises(JujuError):
            await bounded(model.grant_secret(name, app))
        await emulator.control("AddApplication", {"model-uuid": emulator.model_uuid,
                                                  "application": app})
        await bounded(model.grant_secret(name, app))
        s = await secret_by_label(model, emulator, name)
        assert [a.target_tag for a in s.access] == [f"application-{app}"]


# ---------------------------------------------------------------------------- restart


async def test_restart_keeps_state_and_ca(fresh_emulator):
    emu = fresh_emulator
    name = unique("persist")
    vault = unique("pv")
    before = dict(emu.info)
    async with model_conn(emu) as model, controller_conn(emu) as controller:
        uri = await bounded(model.add_secret(name, ["password=one"], info="kept"))
        await bounded(model.grant_secret(name, "mysql"))
        await _add_vault(emu, controller, vault)

    await asyncio.to_thread(emu.restart)
    assert emu.info["ca-cert"] == before["ca-cert"]
    assert emu.info["controller-uuid"] == before["controller-uuid"]
    assert [m["uuid"] for m in emu.info["models"]] == [m["uuid"] for m in before["models"]]

    async with model_conn(emu) as model, controller_conn(emu) as controller:
        s = await secret_by_label(model, emu, name, show=True)
        assert s is not None and s.uri == uri
        assert s.description == "kept"
        assert s.value.data == {"password": b64("one")}
        assert [a.target_tag for a in s.access] == ["application-mysql"]
        assert await backend_by_name(controller, vault) is not None
        # revisions keep counting up after a restart
        await bounded(model.update_secret(name, ["password=two"], new_name=name, info="kept"))
        s = await secret_by_label(model, emu, name)
        assert s.latest_revision == 2
