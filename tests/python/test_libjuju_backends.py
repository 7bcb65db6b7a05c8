"""Secret backends through python-libjuju's Controller, and switching a model's
`secret-backend` through Model.set_config. Expected behaviour: juju-api.md §7 and §8."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from juju.errors import JujuAPIError, JujuError

from helpers import (
    BACKEND_ID_RE,
    VAULT_ENDPOINT,
    backend_by_name,
    bounded,
    controller_conn,
    model_conn,
    secret_by_label,
    unique,
    ControlError,
)

HOUR_NS = 3600 * 10**9


def _plain_juju_error(exc: BaseException) -> bool:
    return isinstance(exc, JujuError) and not isinstance(exc, JujuAPIError)


async def _reachable(emu, name: str, reachable: bool = True) -> None:
    """Tell the emulator whether the vault called `name` answers its ping. New backends
    may already default to reachable; an error for a not-yet-added name is tolerated
    only when we are making it reachable."""
    try:
        await emu.control("SetBackendReachable", {"name": name, "reachable": reachable})
    except ControlError:
        if not reachable:
            raise


async def _add_vault(controller, emu, name: str, **extra_config) -> None:
    await _reachable(emu, name)
    config = {"endpoint": VAULT_ENDPOINT, "token": "s.test-token"} | extra_config
    res = await bounded(controller.add_secret_backends("", name, "vault", config))
    assert [r.error for r in res.results] == [None]


# ---------------------------------------------------------------------------- list


async def test_list_has_internal_backend(emulator):
    async with controller_conn(emulator) as controller:
        res = await bounded(controller.list_secret_backends())
        internal = [r for r in res.results if r.result.name == "internal"]
        assert len(internal) == 1
        b = internal[0]
        assert b.id_ == emulator.controller_uuid
        assert b.result.backend_type == "controller"
        assert b.result.config == {}
        assert b.status == "active"
        assert not b.message and b.error is None
        assert isinstance(b.num_secrets, int) and b.num_secrets >= 0
        assert not b.unknown_fields and not b.result.unknown_fields
        ids = [r.id_ for r in res.results]
        assert ids == sorted(ids), "results are sorted by id as a string"


async def test_controller_bad_password(emulator):
    with pytest.raises(JujuAPIError) as ei:
        async with controller_conn(emulator, password="wrong-password"):
            pass
    assert ei.value.message == "invalid entity name or password"
    assert ei.value.error_code == "unauthorized access"


# ---------------------------------------------------------------------------- add


async def test_add_vault_backend_and_reveal(emulator):
    name = unique("vault")
    async with controller_conn(emulator) as controller:
        await _add_vault(controller, emulator, name, **{"tls-server-name": "vault.local"})
        b = await backend_by_name(controller, name)
        assert b is not None
        assert BACKEND_ID_RE.match(b.id_), b.id_
        assert b.result.backend_type == "vault"
        assert b.status == "active"
        assert b.num_secrets == 0
        assert not b.result.token_rotate_interval
        # without reveal the token is removed
        assert b.result.config == {"endpoint": VAULT_ENDPOINT, "tls-server-name": "vault.local"}
        revealed = await backend_by_name(controller, name, reveal=True)
        assert revealed.result.config == {
            "endpoint": VAULT_ENDPOINT,
            "tls-server-name": "vault.local",
            "token": "s.test-token",
        }
        res = await bounded(controller.list_secret_backends())
        ids = [r.id_ for r in res.results]
        assert ids == sorted(ids)


async def test_add_vault_with_explicit_id(emulator):
    name = unique("vid")
    backend_id = "0123456789abcdef01234567"
    async with controller_conn(emulator) as controller:
        await _reachable(emulator, name)
        res = await bounded(
            controller.add_secret_backends(backend_id, name, "vault", {"endpoint": VAULT_ENDPOINT})
        )
        assert [r.error for r in res.results] == [None]
        b = await backend_by_name(controller, name)
        assert b.id_ == backend_id
        # a second backend with the same id
        other = unique("vid")
        await _reachable(emulator, other)
        with pytest.raises(JujuError) as ei:
            await bounded(
                controller.add_secret_backends(backend_id, other, "vault", {"endpoint": VAULT_ENDPOINT})
            )
        assert ei.value.errors == [f'secret backend with ID "{backend_id}" already exists']


async def test_add_duplicate_name(emulator):
    name = unique("vdup")
    async with controller_conn(emulator) as controller:
        await _add_vault(controller, emulator, name)
        with pytest.raises(JujuError) as ei:
            await bounded(
                controller.add_secret_backends("", name, "vault", {"endpoint": VAULT_ENDPOINT})
            )
        assert _plain_juju_error(ei.value)
        # Go's message names the (empty) id that was given, not the name
        assert ei.value.errors == ['secret backend with ID "" already exists']


@pytest.mark.parametrize("reserved", ["internal", "auto"])
async def test_add_reserved_name(emulator, reserved):
    async with controller_conn(emulator) as controller:
        with pytest.raises(JujuError) as ei:
            await bounded(
                controller.add_secret_backends("", reserved, "vault", {"endpoint": VAULT_ENDPOINT})
            )
        assert ei.value.errors == ["backend %!q(MISSING) not valid"]


async def test_add_unknown_type(emulator):
    async with controller_conn(emulator) as controller:
        with pytest.raises(JujuError) as ei:
            await bounded(controller.add_secret_backends("", unique("x"), "foo", {}))
        assert ei.value.errors == [
            'creating backend provider type "foo": no registered provider for "foo"'
        ]


async def test_add_vault_bad_config(emulator):
    async with controller_conn(emulator) as controller:
        with pytest.raises(JujuError) as ei:
            await bounded(
                controller.add_secret_backends(
                    "", unique("bad"), "vault", {"endpoint": VAULT_ENDPOINT, "foo": "bar"}
                )
            )
        assert ei.value.errors == [
            'invalid config for provider "vault": unknown key "foo" (value "bar")'
        ]
        with pytest.raises(JujuError) as ei:
            await bounded(controller.add_secret_backends("", unique("bad"), "vault", {}))
        assert ei.value.errors == [
            'invalid config for provider "vault": endpoint: expected string, got nothing'
        ]


async def test_add_with_token_rotate_interval_pitfall(emulator):
    """Pitfall 4: add_secret_backends copies config["token-rotate-interval"] into the arg
    but leaves it inside config too, where vault's strict schema rejects it. So with
    python-libjuju a rotation interval can only be set afterwards through
    update_secret_backends; we test that route, and that the server rejects the key."""
    name = unique("rot")
    async with controller_conn(emulator) as controller:
        await _reachable(emulator, name)
        with pytest.raises(JujuError) as ei:
            await bounded(
                controller.add_secret_backends(
                    "", name, "vault",
                    {"endpoint": VAULT_ENDPOINT, "token-rotate-interval": HOUR_NS},
                )
            )
        (msg,) = ei.value.errors
        assert msg.startswith(
            'invalid config for provider "vault": unknown key "token-rotate-interval"'
        ), msg
        assert await backend_by_name(controller, name) is None

        await _add_vault(controller, emulator, name)
        res = await bounded(
            controller.update_secret_backends(name, token_rotate_interval=24 * HOUR_NS)
        )
        assert [r.error for r in res.results] == [None]
        b = await backend_by_name(controller, name)
        assert b.result.token_rotate_interval == 24 * HOUR_NS
        # config is unchanged by a rotation-only update
        assert b.result.config == {"endpoint": VAULT_ENDPOINT}

        with pytest.raises(JujuError) as ei:
            await bounded(
                controller.update_secret_backends(name, token_rotate_interval=600 * 10**9)
            )
        assert ei.value.errors == ['token rotate interval "10m0s" less than 1h not valid']

        # 0 clears rotation
        await bounded(controller.update_secret_backends(name, token_rotate_interval=0))
        b = await backend_by_name(controller, name)
        assert not b.result.token_rotate_interval


# ---------------------------------------------------------------------------- update


async def test_update_backend_config_and_rename(emulator):
    name, new = unique("vu"), unique("vu")
    async with controller_conn(emulator) as controller:
        await _add_vault(controller, emulator, name)
        b0 = await backend_by_name(controller, name)
        res = await bounded(
            controller.update_secret_backends(
                name, config={"token": "s.rotated", "tls-server-name": "v2"}
            )
        )
        assert [r.error for r in res.results] == [None]
        b = await backend_by_name(controller, name, reveal=True)
        assert b.result.config == {
            "endpoint": VAULT_ENDPOINT, "token": "s.rotated", "tls-server-name": "v2",
        }

        await _reachable(emulator, new)
        await bounded(controller.update_secret_backends(name, name_change=new))
        assert await backend_by_name(controller, name) is None
        renamed = await backend_by_name(controller, new)
        assert renamed is not None and renamed.id_ == b0.id_


async def test_update_backend_errors(emulator):
    name, other = unique("ve"), unique("ve")
    async with controller_conn(emulator) as controller:
        await _add_vault(controller, emulator, name)
        await _add_vault(controller, emulator, other)

        with pytest.raises(JujuError) as ei:
            await bounded(
                controller.update_secret_backends(
                    name, config={"endpoint": "https://127.0.0.1:8201"}
                )
            )
        assert ei.value.errors == [
            'invalid config for provider "vault": cannot change immutable field "endpoint"'
        ]

        with pytest.raises(JujuError) as ei:
            await bounded(controller.update_secret_backends("nosuchbackend", config={"token": "x"}))
        assert ei.value.errors == ['secret backend "nosuchbackend" not found']

        with pytest.raises(JujuError) as ei:
            await bounded(controller.update_secret_backends(name, name_change=other))
        assert ei.value.errors == [f'secret backend "{other}" already exists']

        with pytest.raises(JujuError) as ei:
            await bounded(controller.update_secret_backends("internal", config={"token": "x"}))
        assert ei.value.errors == ["backend %!q(MISSING) not valid"]


async def test_backend_edge_cases_as_juju_has_them(fresh_emulator):
    # juju-api.md §10.7: the controller's UUID is accepted as a new backend's ID; a
    # negative token-rotate-interval on update is stored; a name-change that is present
    # runs the in-use check even when it is the current name, and the new name is not
    # validated.
    emu = fresh_emulator
    name = unique("edge")
    async with controller_conn(emu) as controller, model_conn(emu) as model:
        await _reachable(emu, name)
        res = await bounded(controller.add_secret_backends(
            emu.controller_uuid, name, "vault", {"endpoint": VAULT_ENDPOINT}))
        assert [r.error for r in res.results] == [None]

        res = await bounded(controller.update_secret_backends(
            name, token_rotate_interval=-HOUR_NS))
        assert [r.error for r in res.results] == [None]
        b = await backend_by_name(controller, name)
        assert b.result.token_rotate_interval == -HOUR_NS

        await bounded(model.set_config({"secret-backend": name}))
        await bounded(model.add_secret(unique("in-edge"), ["password=one"]))
        with pytest.raises(JujuError) as ei:
            await bounded(controller.update_secret_backends(name, name_change=name))
        assert ei.value.errors == ["cannot rename a secret backend that is in use"]
        await bounded(model.set_config({"secret-backend": "auto"}))

        free = unique("edge")
        await _add_vault(controller, emu, free)
        res = await bounded(controller.update_secret_backends(free, name_change="auto"))
        assert [r.error for r in res.results] == [None]
        assert await backend_by_name(controller, "auto") is not None


# ---------------------------------------------------------------------------- remove


async def test_remove_unknown_backend_succeeds(emulator):
    async with controller_conn(emulator) as controller:
        res = await bounded(controller.remove_secret_backends(unique("nosuch")))
        assert [r.error for r in res.results] == [None]


async def test_remove_reserved_backend(emulator):
    async with controller_conn(emulator) as controller:
        with pytest.raises(JujuError) as ei:
            await bounded(controller.remove_secret_backends("internal"))
        assert ei.value.errors == ["backend %!q(MISSING) not valid"]


async def test_reader_cannot_manage_backends(emulator):
    reader = emulator.user_with_access("read")
    async with controller_conn(emulator, user=reader) as controller:
        # listing without reveal needs only a login
        res = await bounded(controller.list_secret_backends())
        assert "internal" in [r.result.name for r in res.results]
        for call in (
            lambda: controller.list_secret_backends(reveal=True),
            lambda: controller.add_secret_backends(
                "", unique("ro"), "vault", {"endpoint": VAULT_ENDPOINT}
            ),
            lambda: controller.update_secret_backends("internal", config={"token": "x"}),
            lambda: controller.remove_secret_backends(unique("ro")),
        ):
            with pytest.raises(JujuAPIError) as ei:
                await bounded(call())
            assert ei.value.message == "permission denied"
            assert ei.value.error_code == "unauthorized access"


# ---------------------------------------------------------------------------- model switch


async def _wait_for(pred, timeout: float = 5.0, interval: float = 0.1):
    """Bounded poll (the real drain is asynchronous)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await pred()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(interval)


async def test_switch_model_backend_and_remove_in_use(fresh_emulator):
    emu = fresh_emulator
    vault = unique("mv")
    secret = unique("onvault")
    async with controller_conn(emu) as controller, model_conn(emu) as model:
        await _add_vault(controller, emu, vault)

        await bounded(model.set_config({"secret-backend": vault}))
        cfg = await bounded(model.get_config())
        assert cfg["secret-backend"].value == vault
        assert cfg["secret-backend"].source == "model"

        await bounded(model.add_secret(secret, ["password=one"]))
        s = await secret_by_label(model, emu, secret, show=True)
        assert [r.backend_name for r in s.revisions] == [vault]
        assert s.value.data is not None and s.value.error is None

        b = await backend_by_name(controller, vault)
        assert b.num_secrets == 1

        # a backend in use cannot be renamed
        with pytest.raises(JujuError) as ei:
            await bounded(controller.update_secret_backends(vault, name_change=unique("mv")))
        assert ei.value.errors == ["cannot rename a secret backend that is in use"]

        # ...nor removed without force
        with pytest.raises(JujuError) as ei:
            await bounded(controller.remove_secret_backends(vault))
        assert ei.value.errors == [
            "removing backend with 1 stored secret revisions not supported"
        ]

        # back to auto: new revisions go to internal, old ones drain there
        await bounded(model.set_config({"secret-backend": "auto"}))
        cfg = await bounded(model.get_config())
        assert cfg["secret-backend"].value == "auto"
        await bounded(model.update_secret(secret, ["password=two"], new_name=secret))

        async def drained():
            s = await secret_by_label(model, emu, secret)
            return all(r.backend_name == "internal" for r in s.revisions)

        assert await _wait_for(drained), "revisions did not move to internal after the switch"
        s = await secret_by_label(model, emu, secret, show=True)
        assert s.latest_revision == 2
        assert s.value.data == {"password": "dHdv"}

        async def empty():
            return (await backend_by_name(controller, vault)).num_secrets == 0

        assert await _wait_for(empty)
        res = await bounded(controller.remove_secret_backends(vault))
        assert [r.error for r in res.results] == [None]
        assert await backend_by_name(controller, vault) is None


async def test_force_remove_backend_with_revisions(fresh_emulator):
    emu = fresh_emulator
    vault = unique("fr")
    secret = unique("stuck")
    async with controller_conn(emu) as controller, model_conn(emu) as model:
        await _add_vault(controller, emu, vault)
        await bounded(model.set_config({"secret-backend": vault}))
        await bounded(model.add_secret(secret, ["password=one"]))
        with pytest.raises(JujuError):
            await bounded(controller.remove_secret_backends(vault, force=False))
        res = await bounded(controller.remove_secret_backends(vault, force=True))
        assert [r.error for r in res.results] == [None]
        assert await backend_by_name(controller, vault) is None
        s = await secret_by_label(model, emu, secret)
        assert s is not None and s.latest_revision == 1
        # juju-api.md §7.6 [inferred]: such revisions report backend-name "unknown"
        assert [r.backend_name for r in s.revisions] == ["unknown"]
        # the model still names the removed backend: creates fail as a whole
        with pytest.raises(JujuAPIError) as ei:
            await bounded(model.add_secret(unique("nowhere"), ["password=x"]))
        assert ei.value.message.endswith(f'secret backend "{vault}" not found'), ei.value.message
        with contextlib.suppress(JujuError):
            await bounded(model.set_config({"secret-backend": "auto"}))
