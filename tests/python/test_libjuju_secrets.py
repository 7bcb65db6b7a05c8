"""User secrets and model config driven through python-libjuju's Model, as the Juju docs'
Python examples do. Expected behaviour: /work/shared/juju-api.md §5 and §8; libjuju
quirks: /work/shared/python-libjuju.md §2 (pitfalls are tested around, not into)."""

from __future__ import annotations

import asyncio
import uuid as uuidlib

import pytest
from juju.errors import JujuAPIError, JujuError

from helpers import (
    RFC3339_RE,
    SECRET_URI_RE,
    b64,
    bounded,
    checksum,
    model_conn,
    secret_by_label,
    unique,
    user_secrets,
)


def _assert_no_unknown_fields(obj, where: str) -> None:
    unknown = getattr(obj, "unknown_fields", {})
    assert not unknown, f"{where}: members unknown to python-libjuju: {sorted(unknown)}"


def _plain_juju_error(exc: BaseException) -> bool:
    """A per-item error surfaces as a plain JujuError (pitfall 3), not JujuAPIError."""
    return isinstance(exc, JujuError) and not isinstance(exc, JujuAPIError)


async def _update(model, name: str, data_args, *, desc: str, new_name: str | None = None):
    """update_secret always sends label=new_name and description=info (pitfall 1: both
    default to "" and would clear the name). Always pass both explicitly."""
    await bounded(
        model.update_secret(name, data_args=data_args, new_name=new_name or name, info=desc)
    )


# ---------------------------------------------------------------------------- connect


async def test_model_connect_reports_model_info(emulator):
    async with model_conn(emulator) as model:
        assert model.info.uuid == emulator.model_uuid
        assert model.info.name == "dev"
        assert model.info.owner_tag == "user-admin"
        assert model.info.controller_uuid == emulator.controller_uuid
        assert str(model.info.agent_version).startswith("3.6."), model.info.agent_version


async def test_bad_password_is_unauthorized(emulator):
    with pytest.raises(JujuAPIError) as ei:
        async with model_conn(emulator, password="definitely-wrong"):
            pass
    assert ei.value.message == "invalid entity name or password"
    assert ei.value.error_code == "unauthorized access"


async def test_unknown_model_uuid(emulator):
    missing = str(uuidlib.uuid4())
    with pytest.raises(JujuAPIError) as ei:
        async with model_conn(emulator, uuid=missing):
            pass
    assert ei.value.message == f'unknown model: "{missing}"'
    assert ei.value.error_code == "model not found"


# ---------------------------------------------------------------------------- create/list


async def test_add_secret_and_list_it(emulator):
    name = unique("db")
    async with model_conn(emulator) as model:
        uri = await bounded(
            model.add_secret(name, ["username=admin", "password=hunter2"], info="primary DB")
        )
        assert SECRET_URI_RE.match(uri), uri

        s = await secret_by_label(model, emulator, name, show=True)
        assert s is not None, f"{name} not listed"
        _assert_no_unknown_fields(s, "ListSecretResult")
        assert s.uri == uri
        assert s.version == 1
        assert s.owner_tag == f"model-{emulator.model_uuid}"
        assert s.label == name
        assert s.description == "primary DB"
        assert s.latest_revision == 1
        want = {"username": b64("admin"), "password": b64("hunter2")}
        assert s.latest_revision_checksum == checksum(want)
        assert RFC3339_RE.match(s.create_time) and RFC3339_RE.match(s.update_time)
        assert not s.rotate_policy
        assert not s.access, "a new user secret has no view grants"
        assert [r.revision for r in s.revisions] == [1]
        assert s.revisions[0].backend_name == "internal"
        assert s.value is not None and s.value.error is None
        assert s.value.data == want

        # without show_secrets there is no value
        plain = await secret_by_label(model, emulator, name, show=False)
        assert plain.value is None

        # list_secrets filtered by label (any owner) finds exactly this one
        by_label = await bounded(model.list_secrets(filter={"label": name}))
        assert [x.uri for x in by_label] == [uri]

        # unfiltered (pitfall 6: includes charm-owned secrets too) still contains it
        everything = await bounded(model.list_secrets())
        assert uri in [x.uri for x in everything]


async def test_add_secret_without_description_omits_it(emulator):
    name = unique("nodesc")
    async with model_conn(emulator) as model:
        await bounded(model.add_secret(name, ["token=abc"]))
        s = await secret_by_label(model, emulator, name)
        # add_secret sends description "" → a real (empty) value; omitted on output.
        assert not s.description


async def test_add_duplicate_name(emulator):
    name = unique("dup")
    async with model_conn(emulator) as model:
        await bounded(model.add_secret(name, ["token=one"]))
        with pytest.raises(JujuError) as ei:
            await bounded(model.add_secret(name, ["token=two"]))
        assert _plain_juju_error(ei.value), repr(ei.value)
        assert ei.value.errors == [f'secret with name "{name}" already exists']
        # the first secret is untouched
        s = await secret_by_label(model, emulator, name, show=True)
        assert s.latest_revision == 1
        assert s.value.data == {"token": b64("one")}


async def test_list_unknown_uri_is_empty_not_error(emulator):
    async with model_conn(emulator) as model:
        res = await bounded(
            model.list_secrets(filter={"uri": "secret:9fvb66662rqormfsip9g"})
        )
        assert res == []


# ---------------------------------------------------------------------------- update


async def test_update_secret_new_revision(emulator):
    name = unique("upd")
    async with model_conn(emulator) as model:
        uri = await bounded(model.add_secret(name, ["password=one"], info="d"))
        before = await secret_by_label(model, emulator, name)
        await _update(model, name, ["password=two", "extra=x"], desc="d")
        s = await secret_by_label(model, emulator, name, show=True)
        assert s.uri == uri
        assert s.latest_revision == 2
        assert sorted(r.revision for r in s.revisions) == [1, 2]
        want = {"password": b64("two"), "extra": b64("x")}
        assert s.value.data == want, "a revision is a full snapshot, not merged"
        assert s.latest_revision_checksum == checksum(want)
        assert s.label == name and s.description == "d"
        assert s.create_time == before.create_time
        assert s.update_time >= before.update_time


async def test_update_secret_identical_content_makes_no_revision(emulator):
    name = unique("same")
    async with model_conn(emulator) as model:
        await bounded(model.add_secret(name, ["password=one"], info="d"))
        await _update(model, name, ["password=one"], desc="d")
        s = await secret_by_label(model, emulator, name)
        assert s.latest_revision == 1, "3.6.0+: identical content makes no new revision"
        assert [r.revision for r in s.revisions] == [1]


async def test_update_secret_rename_and_describe(emulator):
    name, new = unique("old"), unique("new")
    async with model_conn(emulator) as model:
        uri = await bounded(model.add_secret(name, ["password=one"], info="before"))
        # data_args=[] → content.data {} → metadata-only update, no new revision
        await _update(model, name, [], desc="after", new_name=new)
        s = await secret_by_label(model, emulator, new)
        assert s is not None and s.uri == uri
        assert s.description == "after"
        assert s.latest_revision == 1
        assert await secret_by_label(model, emulator, name) is None
        # the old name is free again
        uri2 = await bounded(model.add_secret(name, ["password=z"]))
        assert uri2 != uri


async def test_update_rename_to_taken_name(emulator):
    a, b = unique("a"), unique("b")
    async with model_conn(emulator) as model:
        await bounded(model.add_secret(a, ["password=one"]))
        await bounded(model.add_secret(b, ["password=two"]))
        with pytest.raises(JujuError) as ei:
            await _update(model, a, [], desc="", new_name=b)
        assert _plain_juju_error(ei.value)
        assert ei.value.errors == [f'secret with name "{b}" already exists']


async def test_update_unknown_secret(emulator):
    name = unique("ghost")
    async with model_conn(emulator) as model:
        with pytest.raises(JujuError) as ei:
            await _update(model, name, ["password=x"], desc="")
        assert _plain_juju_error(ei.value)
        assert ei.value.errors == [f'secret "{name}" not found']


# ---------------------------------------------------------------------------- grant/revoke


def _grants(s) -> list[tuple[str, str, str]]:
    return sorted((a.target_tag, a.scope_tag, a.role) for a in (s.access or []))


async def test_grant_and_revoke(emulator):
    name = unique("g")
    apps = emulator.model["applications"]
    assert "mysql" in apps and "wordpress" in apps, apps
    scope = f"model-{emulator.model_uuid}"
    async with model_conn(emulator) as model:
        await bounded(model.add_secret(name, ["password=one"]))
        # grant_secret checks len(results) == 1, but GrantSecret answers one result per
        # application, so python-libjuju cannot grant to two apps at once (a libjuju
        # bug). Grant one application per call.
        await bounded(model.grant_secret(name, "mysql"))
        await bounded(model.grant_secret(name, "wordpress"))
        await bounded(model.grant_secret(name, "mysql"))  # granting twice is fine
        s = await secret_by_label(model, emulator, name)
        assert _grants(s) == [
            ("application-mysql", scope, "view"),
            ("application-wordpress", scope, "view"),
        ]
        for a in s.access:
            _assert_no_unknown_fields(a, "AccessInfo")

        await bounded(model.revoke_secret(name, "mysql"))
        s = await secret_by_label(model, emulator, name)
        assert _grants(s) == [("application-wordpress", scope, "view")]

        # revoking a grant that does not exist, or for an unknown app, succeeds
        await bounded(model.revoke_secret(name, "mysql"))
        await bounded(model.revoke_secret(name, "nosuchapp"))
        await bounded(model.revoke_secret(name, "wordpress"))
        s = await secret_by_label(model, emulator, name)
        assert not s.access


async def test_grant_unknown_application(emulator):
    name = unique("g")
    async with model_conn(emulator) as model:
        uri = await bounded(model.add_secret(name, ["password=one"]))
        with pytest.raises(JujuError) as ei:
            await bounded(model.grant_secret(name, "nosuchapp"))
        assert _plain_juju_error(ei.value)
        assert ei.value.errors == [
            f'cannot change access to "{uri}" for "nosuchapp": '
            'invalid subject reference: saas application "nosuchapp" not found'
        ]


async def test_grant_unknown_secret_is_top_level_error(emulator):
    name = unique("ghost")
    async with model_conn(emulator) as model:
        with pytest.raises(JujuAPIError) as ei:
            await bounded(model.grant_secret(name, "mysql"))
        assert ei.value.message == f'secret "{name}" not found'
        assert ei.value.error_code == "not found"


# ---------------------------------------------------------------------------- remove


async def test_value_of_a_removed_latest_revision(emulator):
    # juju-api.md §10.8.
    name = unique("rmlatest")
    async with model_conn(emulator) as model:
        uri = await bounded(model.add_secret(name, ["password=one"]))
        await _update(model, name, ["password=two"], desc="")
        await bounded(model.remove_secret(name, revision=2))
        s = await secret_by_label(model, emulator, name, show=True)
        xid = uri.removeprefix("secret:")
        assert s.value.error.message == f'secret revision "{xid}/2" not found', s.value


async def test_remove_secret_revision_then_whole(emulator):
    name = unique("rm")
    async with model_conn(emulator) as model:
        uri = await bounded(model.add_secret(name, ["password=one"]))
        await _update(model, name, ["password=two"], desc="")
        await _update(model, name, ["password=three"], desc="")
        await bounded(model.remove_secret(name, revision=1))
        s = await secret_by_label(model, emulator, name, show=True)
        assert sorted(r.revision for r in s.revisions) == [2, 3]
        assert s.latest_revision == 3
        assert s.value.data == {"password": b64("three")}

        # removing the latest revision does not lower latest-revision
        await bounded(model.remove_secret(name, revision=3))
        s = await secret_by_label(model, emulator, name)
        assert [r.revision for r in s.revisions] == [2]
        assert s.latest_revision == 3
        # ...and the next update is still latest+1
        await _update(model, name, ["password=four"], desc="")
        s = await secret_by_label(model, emulator, name)
        assert s.latest_revision == 4
        assert sorted(r.revision for r in s.revisions) == [2, 4]

        await bounded(model.remove_secret(name))
        assert await secret_by_label(model, emulator, name) is None
        assert await bounded(model.list_secrets(filter={"uri": uri})) == []
        # the label is free again
        uri2 = await bounded(model.add_secret(name, ["password=again"]))
        assert uri2 != uri


async def test_remove_last_revision_removes_secret(emulator):
    name = unique("rm1")
    async with model_conn(emulator) as model:
        await bounded(model.add_secret(name, ["password=one"]))
        await bounded(model.remove_secret(name, revision=1))
        assert await secret_by_label(model, emulator, name) is None


async def test_remove_missing_revision(emulator):
    name = unique("rmx")
    async with model_conn(emulator) as model:
        await bounded(model.add_secret(name, ["password=one"]))
        with pytest.raises(JujuError) as ei:
            await bounded(model.remove_secret(name, revision=7))
        assert _plain_juju_error(ei.value)
        # 3.6.5+ wording (the emulator imitates 3.6.14)
        assert ei.value.errors == ["cannot delete any of revisions [7] - revisions not found"]
        s = await secret_by_label(model, emulator, name)
        assert s.latest_revision == 1


async def test_remove_unknown_secret(emulator):
    name = unique("ghost")
    async with model_conn(emulator) as model:
        with pytest.raises(JujuError) as ei:
            await bounded(model.remove_secret(name))
        assert _plain_juju_error(ei.value)
        assert ei.value.errors == [f'secret "{name}" not found']


async def test_remove_by_uri_is_a_label_lookup(emulator):
    """Pitfall 2: remove_secret puts its argument in `label`, so a URI is looked up as
    a label and is not found. We assert the server's answer to what libjuju sent."""
    name = unique("byuri")
    async with model_conn(emulator) as model:
        uri = await bounded(model.add_secret(name, ["password=one"]))
        with pytest.raises(JujuError) as ei:
            await bounded(model.remove_secret(uri))
        assert ei.value.errors == [f'secret "{uri}" not found']
        assert await secret_by_label(model, emulator, name) is not None


# ---------------------------------------------------------------------------- permissions


async def test_reader_can_list_but_not_write(emulator):
    reader = emulator.user_with_access("read")
    name = unique("ro")
    async with model_conn(emulator) as admin:
        await bounded(admin.add_secret(name, ["password=one"]))
    async with model_conn(emulator, user=reader) as model:
        s = await secret_by_label(model, emulator, name)
        assert s is not None and s.value is None

        with pytest.raises(JujuAPIError) as ei:
            await bounded(model.list_secrets(show_secrets=True))
        assert ei.value.message == "permission denied"
        assert ei.value.error_code == "unauthorized access"

        for call in (
            lambda: model.add_secret(unique("ro"), ["password=x"]),
            lambda: model.update_secret(name, ["password=y"], new_name=name),
            lambda: model.grant_secret(name, "mysql"),
            lambda: model.revoke_secret(name, "mysql"),
            lambda: model.set_config({"secret-backend": "auto"}),
        ):
            with pytest.raises(JujuAPIError) as ei:
                await bounded(call())
            assert ei.value.message == "permission denied"
            assert ei.value.error_code == "unauthorized access"
        # RemoveSecrets checks permission per item, after the not-found checks
        # (juju-api.md §10.2): an item error, not a failed call.
        with pytest.raises(JujuError) as ei:
            await bounded(model.remove_secret(name))
        assert _plain_juju_error(ei.value)
        assert ei.value.errors == ["permission denied"]
        with pytest.raises(JujuError) as ei:
            await bounded(model.remove_secret(unique("ghost")))
        assert ei.value.errors[0].endswith("not found"), ei.value.errors
    async with model_conn(emulator) as admin:
        s = await secret_by_label(admin, emulator, name, show=True)
        assert s.latest_revision == 1 and s.value.data == {"password": b64("one")}


# ---------------------------------------------------------------------------- model config


async def test_get_config_secret_backend_default(emulator):
    async with model_conn(emulator) as model:
        cfg = await bounded(model.get_config())
        assert "secret-backend" in cfg
        assert cfg["secret-backend"].value == "auto"
        assert cfg["secret-backend"].source == "default"
        assert "authorized-keys" not in cfg
        assert "default-series" in cfg


async def test_set_config_secret_backend_errors(emulator):
    async with model_conn(emulator) as model:
        with pytest.raises(JujuAPIError) as ei:
            await bounded(model.set_config({"secret-backend": "nosuchbackend"}))
        assert ei.value.message == 'secret backend "nosuchbackend" not found'
        assert ei.value.error_code == "not found"

        with pytest.raises(JujuAPIError) as ei:
            await bounded(model.set_config({"secret-backend": ""}))
        assert ei.value.message == 'empty "secret-backend" config value not valid'
        assert ei.value.error_code == "not valid"

        # auto is always accepted
        await bounded(model.set_config({"secret-backend": "auto"}))
        cfg = await bounded(model.get_config())
        assert cfg["secret-backend"].value == "auto"


async def test_many_revisions_are_all_listed(emulator):
    """11 revisions; the server's order (string sort, 1,10,11,2...) is a quirk, so
    compare as sets here (the raw module checks the order itself)."""
    name = unique("many")
    async with model_conn(emulator) as model:
        await bounded(model.add_secret(name, ["password=v1"]))
        for i in range(2, 12):
            await _update(model, name, [f"password=v{i}"], desc="")
        s = await secret_by_label(model, emulator, name, show=True)
        assert s.latest_revision == 11
        assert sorted(r.revision for r in s.revisions) == list(range(1, 12))
        assert s.value.data == {"password": b64("v11")}


async def test_concurrent_calls_on_one_connection(emulator):
    """Pipelined requests are matched by request-id."""
    names = [unique("par") for _ in range(5)]
    async with model_conn(emulator) as model:
        uris = await bounded(
            asyncio.gather(*(model.add_secret(n, [f"password={n}"]) for n in names))
        )
        assert len(set(uris)) == 5
        listed = {s.label: s.uri for s in await user_secrets(model, emulator)}
        for n, u in zip(names, uris):
            assert listed[n] == u
