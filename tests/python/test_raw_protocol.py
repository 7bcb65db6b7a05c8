"""Envelope- and wire-level checks with a bare websocket client, plus a few calls through
python-libjuju's own Connection and generated facades. Expected behaviour: juju-api.md
§1, §2, §5 and the §9 checklist."""

from __future__ import annotations

import asyncio
import re
import uuid as uuidlib

import pytest
from juju.client import client
from juju.client.connection import Connection
from juju.errors import JujuError

from helpers import RawConn, b64, bounded, unique

RESPONSE_ONLY_KEYS = {"request-id", "response", "error", "error-code", "error-info"}
NULL_ERROR = re.compile(r'"error"\s*:\s*null')


def _assert_envelope(reply: dict, text: str) -> None:
    assert set(reply) <= RESPONSE_ONLY_KEYS, f"unexpected envelope keys {set(reply) - RESPONSE_ONLY_KEYS}"
    assert "response" in reply, "every frame, errors included, must carry `response`"
    assert not NULL_ERROR.search(text), "a frame contains \"error\": null"
    if "error" in reply:
        assert isinstance(reply["error"], str) and reply["error"]
        assert reply["response"] == {}
        if "error-code" in reply:
            assert reply["error-code"], "empty error-code must be omitted"
    else:
        assert "error-code" not in reply and "error-info" not in reply


def _err(reply: dict) -> tuple[str, str | None]:
    assert "error" in reply, f"expected an error frame, got {reply}"
    return reply["error"], reply.get("error-code")


def _model_path(emu, uuid: str | None = None) -> str:
    return f"/model/{uuid or emu.model_uuid}/api"


# ---------------------------------------------------------------------------- login


async def test_controller_login_shape(emulator):
    async with RawConn.open(emulator, "/api") as c:
        reply = await c.login(emulator)
        assert "error" not in reply, reply
        r = reply["response"]
        assert "model-tag" not in r, "no model-tag on /api logins"
        assert r["controller-tag"] == f"controller-{emulator.controller_uuid}"
        assert r["server-version"] == "3.6.14"
        assert r["user-info"]["identity"] == "user-admin"
        assert r["user-info"]["controller-access"] == "superuser"
        assert r["user-info"]["model-access"] == ""
        names = [f["name"] for f in r["facades"]]
        assert names == sorted(names)
        assert "Admin" not in names
        assert {"Pinger", "SecretBackends", "ModelManager", "ModelConfig"} <= set(names)
        assert "Secrets" not in names
        versions = {f["name"]: f["versions"] for f in r["facades"]}
        assert versions["SecretBackends"] == [1]
        assert 10 in versions["ModelManager"]
        for v in versions.values():
            assert v == sorted(v)
        assert r["servers"] and all(isinstance(hp, list) for hp in r["servers"])


async def test_model_login_shape(emulator):
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        reply = await c.login(emulator)
        r = reply["response"]
        assert r["model-tag"] == f"model-{emulator.model_uuid}"
        assert r["controller-tag"] == f"controller-{emulator.controller_uuid}"
        assert r["user-info"]["model-access"] == "admin"
        versions = {f["name"]: f["versions"] for f in r["facades"]}
        assert versions.get("Secrets") == [1, 2]
        assert versions.get("ModelConfig") == [3]
        assert versions.get("Pinger") == [1]
        assert "SecretBackends" not in versions and "Admin" not in versions


async def test_bad_password_frame(emulator):
    async with RawConn.open(emulator, "/api") as c:
        reply, text = await c.call(
            "Admin", 3, "Login", {"auth-tag": "user-admin", "credentials": "nope"}
        )
        _assert_envelope(reply, text)
        assert _err(reply) == ("invalid entity name or password", "unauthorized access")


async def test_unknown_user(emulator):
    async with RawConn.open(emulator, "/api") as c:
        reply, text = await c.call(
            "Admin", 3, "Login", {"auth-tag": "user-nobody", "credentials": "x"}
        )
        assert _err(reply) == ("invalid entity name or password", "unauthorized access")


@pytest.mark.parametrize("model_id", ["uuid", "not-a-uuid"])
async def test_unknown_model_every_call_fails(emulator, model_id):
    missing = str(uuidlib.uuid4()) if model_id == "uuid" else model_id
    async with RawConn.open(emulator, _model_path(emulator, missing)) as c:
        for facade, version, method in [("Admin", 3, "Login"), ("Pinger", 1, "Ping"),
                                        ("Secrets", 2, "ListSecrets")]:
            params = {"auth-tag": "user-admin", "credentials": emulator.password()} \
                if method == "Login" else {}
            reply, text = await c.call(facade, version, method, params)
            _assert_envelope(reply, text)
            assert _err(reply) == (f'unknown model: "{missing}"', "model not found")


async def test_calls_before_login(emulator):
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        reply, text = await c.call("Secrets", 2, "ListSecrets", {})
        _assert_envelope(reply, text)
        assert _err(reply) == ('unknown version (2) of interface "Secrets"', "not implemented")
        # after that, login still works
        assert "error" not in await c.login(emulator)


async def test_second_login_rejected(emulator):
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        reply = await c.login(emulator)
        assert _err(reply) == ('unknown version (3) of interface "Admin"', "not implemented")


# ---------------------------------------------------------------------------- envelope


async def test_request_id_echo_and_pipelining(emulator):
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        ids = [7, 42, 1000, 3]
        for rid in ids:
            await c.send({"request-id": rid, "type": "Pinger", "version": 1,
                          "request": "Ping", "params": {}})
        got = {}
        for _ in ids:
            reply, text = await c.recv()
            _assert_envelope(reply, text)
            assert reply["response"] == {}
            got[reply["request-id"]] = reply
        assert sorted(got) == sorted(ids)


async def test_ping_on_both_connection_kinds(emulator):
    for path in ("/api", _model_path(emulator)):
        async with RawConn.open(emulator, path) as c:
            await c.login(emulator)
            reply, text = await c.call("Pinger", 1, "Ping", omit_params=True)
            _assert_envelope(reply, text)
            assert reply["response"] == {}


async def test_unknown_facade_version_method(emulator):
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        cases = [
            (("Foo", 1, "Bar"), ('unknown object type "Foo"', "not implemented")),
            (("Secrets", 0, "ListSecrets"), ('unknown object type "Secrets"', "not implemented")),
            (("Secrets", 3, "ListSecrets"),
             ('unknown version (3) of interface "Secrets"', "not implemented")),
            (("Secrets", 2, "Foo"),
             ("no such request - method Secrets(2).Foo is not implemented", "not implemented")),
            (("Secrets", 1, "CreateSecrets"),
             ("no such request - method Secrets(1).CreateSecrets is not implemented",
              "not implemented")),
        ]
        for (facade, version, method), expected in cases:
            reply, text = await c.call(facade, version, method, {})
            _assert_envelope(reply, text)
            assert _err(reply) == expected, (facade, version, method)


async def test_facade_split(emulator):
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        reply, text = await c.call("SecretBackends", 1, "ListSecretBackends", {"reveal": False})
        _assert_envelope(reply, text)
        assert _err(reply) == (
            'facade "SecretBackends" not supported for model API connection', "not supported"
        )
    async with RawConn.open(emulator, "/api") as c:
        await c.login(emulator)
        reply, text = await c.call("Secrets", 2, "ListSecrets", {})
        _assert_envelope(reply, text)
        assert _err(reply) == (
            'facade "Secrets" not supported for controller API connection', "not supported"
        )


async def test_lenient_params(emulator):
    """Missing params, null members, unknown keys and differently-cased keys."""
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        for params, omit in [
            (None, True),
            ({"filter": None, "show-secrets": None}, False),
            ({"Filter": {}, "Show-Secrets": False, "bogus": 1}, False),
        ]:
            reply, text = await c.call("Secrets", 2, "ListSecrets", params, omit_params=omit)
            _assert_envelope(reply, text)
            assert "error" not in reply, reply
            assert isinstance(reply["response"]["results"], list)


# ---------------------------------------------------------------------------- secrets wire


async def _create(c: RawConn, label: str | None, data: dict, **extra) -> dict:
    arg = {"content": {"data": data}, "owner-tag": ""} | extra
    if label is not None:
        arg["label"] = label
    reply, text = await c.call("Secrets", 2, "CreateSecrets", {"args": [arg]})
    _assert_envelope(reply, text)
    return reply


async def _list(c: RawConn, emu, **flt) -> list[dict]:
    flt.setdefault("owner-tag", f"model-{emu.model_uuid}")
    reply, text = await c.call("Secrets", 2, "ListSecrets", {"show-secrets": True, "filter": flt})
    _assert_envelope(reply, text)
    assert "error" not in reply, reply
    return reply["response"]["results"]


async def test_create_list_wire_shape(emulator):
    label = unique("wire")
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        reply = await _create(c, label, {"username": b64("u")})
        (item,) = reply["response"]["results"]
        assert set(item) == {"result"}, "success items carry no `error` member"
        uri = item["result"]
        (s,) = await _list(c, emulator, uri=uri)
        assert "rotate-policy" not in s and "description" not in s and "access" not in s
        assert s["label"] == label
        assert s["version"] == 1
        assert s["value"] == {"data": {"username": b64("u")}}
        rev = s["revisions"][0]
        assert set(rev) == {"revision", "backend-name", "create-time", "update-time"}


async def test_create_errors(emulator):
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        tag = f"model-{emulator.model_uuid}"
        reply = await _create(c, unique("own"), {"a": b64("x")}, **{"owner-tag": tag})
        (item,) = reply["response"]["results"]
        assert item["error"] == {"message": f'owner tag "{tag}" not valid', "code": "not valid"}

        reply = await _create(c, unique("empty"), {})
        (item,) = reply["response"]["results"]
        assert item["error"] == {"message": "empty secret value not valid", "code": "not valid"}

        # the bare model UUID is accepted as owner-tag; so is no label at all
        reply = await _create(c, None, {"a": b64("x")}, **{"owner-tag": emulator.model_uuid})
        (item,) = reply["response"]["results"]
        assert "error" not in item and item["result"].startswith("secret:")
        (s,) = await _list(c, emulator, uri=item["result"])
        assert "label" not in s

        # bulk: one result per item, in order
        label = unique("bulk")
        reply, text = await c.call("Secrets", 2, "CreateSecrets", {"args": [
            {"label": label, "content": {"data": {"a": b64("1")}}},
            {"label": label, "content": {"data": {"a": b64("2")}}},
            {"label": unique("bulk"), "content": {"data": {"a": b64("3")}}},
        ]})
        _assert_envelope(reply, text)
        r = reply["response"]["results"]
        assert len(r) == 3
        assert "error" not in r[0] and "error" not in r[2]
        assert r[1]["error"] == {
            "message": f'secret with name "{label}" already exists', "code": "already exists",
        }


async def test_update_pointer_semantics(emulator):
    """label/description absent → unchanged; "" → set empty (python-libjuju pitfall 1
    is this rule seen from the client side)."""
    label = unique("ptr")
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        uri = (await _create(c, label, {"a": b64("1")}, description="desc"))["response"]["results"][0]["result"]

        async def update(arg: dict) -> dict:
            reply, text = await c.call("Secrets", 2, "UpdateSecrets", {"args": [arg]})
            _assert_envelope(reply, text)
            return reply["response"]["results"][0]

        assert await update({"uri": uri, "existing-label": "", "content": {"data": {"a": b64("2")}}}) == {}
        (s,) = await _list(c, emulator, uri=uri)
        assert s["label"] == label and s["description"] == "desc" and s["latest-revision"] == 2

        assert await update({"existing-label": label, "description": ""}) == {}
        (s,) = await _list(c, emulator, uri=uri)
        assert "description" not in s and s["label"] == label and s["latest-revision"] == 2

        assert await update({"uri": uri, "label": ""}) == {}
        (s,) = await _list(c, emulator, uri=uri)
        assert "label" not in s

        # nothing to update
        item = await update({"uri": uri, "content": {}})
        assert item["error"]["message"] in (
            "at least one attribute to update must be specified",
            "must specify a new value or metadata to update a secret",
        )
        assert item["error"]["code"] == ""
        item = await update({"content": {"data": {"a": b64("3")}}})
        assert item["error"] == {"message": "must specify either URI or label", "code": ""}
        item = await update({"uri": uri, "existing-label": "x", "content": {"data": {"a": b64("3")}}})
        assert item["error"] == {"message": "must specify either URI or label but not both", "code": ""}
        item = await update({"uri": "secret:9fvb66662rqormfsip9g", "description": "x"})
        assert item["error"] == {"message": 'secret "secret:9fvb66662rqormfsip9g" not found',
                                 "code": "not found"}
        item = await update({"uri": "garbage!", "description": "x"})
        assert item["error"] == {"message": 'secret URI "garbage!" not valid', "code": "not valid"}


async def test_revision_order_quirk(emulator):
    label = unique("order")
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        uri = (await _create(c, label, {"a": b64("1")}))["response"]["results"][0]["result"]
        for i in range(2, 12):
            reply, _ = await c.call("Secrets", 2, "UpdateSecrets", {"args": [
                {"uri": uri, "existing-label": "", "content": {"data": {"a": b64(str(i))}}}]})
            assert reply["response"]["results"] == [{}]
        (s,) = await _list(c, emulator, uri=uri)
        revs = [r["revision"] for r in s["revisions"]]
        assert revs == sorted(range(1, 12), key=str), f"revisions sorted as strings: {revs}"


async def test_list_filter_errors(emulator):
    label = unique("flt")
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        uri = (await _create(c, label, {"a": b64("1")}))["response"]["results"][0]["result"]
        reply, text = await c.call("Secrets", 2, "ListSecrets",
                                   {"filter": {"owner-tag": "foo"}})
        _assert_envelope(reply, text)
        assert _err(reply)[0] == '"foo" is not a valid tag'

        reply, text = await c.call("Secrets", 2, "ListSecrets",
                                   {"filter": {"uri": uri, "revision": 5}})
        _assert_envelope(reply, text)
        assert _err(reply) == (f'revison 5 for secret "{uri}" not found', "not found")

        reply, _ = await c.call("Secrets", 2, "ListSecrets",
                                {"show-secrets": True, "filter": {"uri": uri, "revision": 1}})
        (s,) = reply["response"]["results"]
        assert [r["revision"] for r in s["revisions"]] == [1]


async def test_remove_wire_errors(fresh_emulator):
    # fresh: a shared emulator may hold a secret whose label was set to "", which a
    # label "" lookup could legitimately find
    emulator = fresh_emulator
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        reply, text = await c.call("Secrets", 2, "RemoveSecrets", {"args": [
            {"uri": "", "label": ""},
            {"uri": "secret:9fvb66662rqormfsip9g", "label": ""},
        ]})
        _assert_envelope(reply, text)
        r = reply["response"]["results"]
        # 3.6.4+ wording for "neither"
        assert r[0]["error"] == {"message": 'secret "" not found', "code": "not found"}
        assert r[1]["error"] == {"message": 'secret "secret:9fvb66662rqormfsip9g" not found',
                                 "code": "not found"}


async def test_the_empty_label_is_no_label(fresh_emulator):
    # juju-api.md §10.5: any number of secrets may be unlabelled (no label, or label ""),
    # a label "" filter lists them, and RemoveSecrets with neither URI nor label removes
    # the one unlabelled secret, refusing when there are several.
    emulator = fresh_emulator
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        first = (await _create(c, None, {"a": b64("1")}))["response"]["results"][0]["result"]
        second = (await _create(c, "", {"a": b64("2")}))["response"]["results"][0]["result"]
        assert first != second
        listed = await _list(c, emulator, label="")
        assert sorted(s["uri"] for s in listed) == sorted([first, second])
        assert all("label" not in s for s in listed)

        remove_unlabelled = {"args": [{"uri": "", "label": ""}]}
        reply, _ = await c.call("Secrets", 2, "RemoveSecrets", remove_unlabelled)
        assert reply["response"]["results"] == [{"error": {
            "message": 'more than 1 secret with label "" not found', "code": "not found"}}]
        reply, _ = await c.call("Secrets", 2, "RemoveSecrets",
                                {"args": [{"uri": first, "label": ""}]})
        assert reply["response"]["results"] == [{}]
        reply, _ = await c.call("Secrets", 2, "RemoveSecrets", remove_unlabelled)
        assert reply["response"]["results"] == [{}]
        assert await _list(c, emulator, label="") == []
        reply, _ = await c.call("Secrets", 2, "RemoveSecrets", remove_unlabelled)
        assert reply["response"]["results"] == [{"error": {
            "message": 'secret "" not found', "code": "not found"}}]


async def test_grant_is_per_application(emulator):
    label = unique("grant")
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        uri = (await _create(c, label, {"a": b64("1")}))["response"]["results"][0]["result"]
        reply, text = await c.call("Secrets", 2, "GrantSecret", {
            "uri": "", "label": label, "applications": ["mysql", "nosuchapp", "Bad_App"]})
        _assert_envelope(reply, text)
        r = reply["response"]["results"]
        assert len(r) == 3
        assert r[0] == {}
        assert r[1]["error"] == {
            "message": f'cannot change access to "{uri}" for "nosuchapp": invalid subject '
                       'reference: saas application "nosuchapp" not found',
            "code": "not found",
        }
        assert r[2]["error"] == {
            "message": f'cannot change access to "{uri}" for "Bad_App": invalid subject '
                       'reference: "Bad_App" is not a valid application name',
            "code": "",
        }
        reply, _ = await c.call("Secrets", 2, "GrantSecret",
                                {"uri": "", "label": "", "applications": ["mysql"]})
        assert _err(reply) == ("must specify either URI or name", None)

        (s,) = await _list(c, emulator, uri=uri)
        assert s["access"] == [{"target-tag": "application-mysql",
                                "scope-tag": f"model-{emulator.model_uuid}", "role": "view"}]


async def test_grant_and_revoke_on_a_uri_that_does_not_exist(emulator):
    # Juju parses the URI and does not look it up for the call (juju-api.md §10.4): a
    # grant fails per application, a revoke succeeds for every application, and a
    # revoke of an application that does not exist succeeds too.
    ghost = "secret:9fvb66662rqormfsip9g"
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        reply, text = await c.call("Secrets", 2, "GrantSecret", {
            "uri": ghost, "label": "", "applications": ["mysql", "wordpress"]})
        _assert_envelope(reply, text)
        r = reply["response"]["results"]
        assert r == [
            {"error": {"message": f'cannot change access to "{ghost}" for "{app}": '
                                  f'secret "{ghost}" not found',
                       "code": "not found"}}
            for app in ("mysql", "wordpress")
        ]
        reply, text = await c.call("Secrets", 2, "RevokeSecret", {
            "uri": ghost, "label": "", "applications": ["mysql", "nosuchapp"]})
        _assert_envelope(reply, text)
        assert reply["response"]["results"] == [{}, {}]

        label = unique("revoke-unknown")
        uri = (await _create(c, label, {"a": b64("1")}))["response"]["results"][0]["result"]
        reply, _ = await c.call("Secrets", 2, "RevokeSecret", {
            "uri": uri, "label": "", "applications": ["nosuchapp"]})
        assert reply["response"]["results"] == [{}]


# ---------------------------------------------------------------------------- libjuju Connection


async def test_libjuju_connection_and_generated_facades(emulator):
    conn = await bounded(Connection.connect(
        endpoint=emulator.endpoint, uuid=emulator.model_uuid, username="admin",
        password=emulator.password(), cacert=emulator.cacert, retries=0))
    try:
        assert conn.facades["Secrets"] == 2
        assert conn.facades["ModelConfig"] == 3
        secrets = client.SecretsFacade.from_connection(conn)
        label = unique("lc")
        res = await bounded(secrets.CreateSecrets([{"content": {"data": {"k": b64("v")}},
                                                    "label": label}]))
        uri = res.results[0].result
        res = await bounded(secrets.ListSecrets(
            filter_={"owner-tag": f"model-{emulator.model_uuid}", "uri": uri}, show_secrets=True))
        assert [r.label for r in res.results] == [label]
        # GrantSecret on two applications: one result each
        res = await bounded(secrets.GrantSecret(applications=["mysql", "wordpress"], label=label))
        assert [r.error for r in res.results] == [None, None]
    finally:
        await bounded(conn.close())

    ctl = await bounded(Connection.connect(
        endpoint=emulator.endpoint, username="admin", password=emulator.password(),
        cacert=emulator.cacert, retries=0))
    try:
        assert ctl.facades["SecretBackends"] == 1
        assert ctl.facades["ModelManager"] == 10
        mm = client.ModelManagerFacade.from_connection(ctl)
        res = await bounded(mm.ListModels(tag="user-admin"))
        dev = [m for m in res.user_models if m.model.name == "dev"]
        assert len(dev) == 1 and dev[0].model.uuid == emulator.model_uuid
        assert dev[0].model.owner_tag == "user-admin"
        assert dev[0].model.type_ in ("iaas", "caas")
        res = await bounded(mm.ListModelSummaries(user_tag="user-admin", all_=False))
        assert emulator.model_uuid in [r.result.uuid for r in res.results]
        res = await bounded(mm.ModelInfo(entities=[{"tag": f"model-{emulator.model_uuid}"}]))
        assert res.results[0].result.name == "dev"
        # a per-item error surfaces as JujuError (python-libjuju pitfall 3)
        with pytest.raises(JujuError) as ei:
            await bounded(mm.ModelInfo(entities=[{"tag": f"model-{uuidlib.uuid4()}"}]))
        assert ei.value.errors == ["permission denied"]
    finally:
        await bounded(ctl.close())


async def test_pipelined_ids_do_not_collide_across_connections(emulator):
    async with RawConn.open(emulator, "/api") as a, RawConn.open(emulator, "/api") as b:
        await a.login(emulator)
        await b.login(emulator)
        ra, rb = await asyncio.gather(
            a.call("Pinger", 1, "Ping", request_id=99),
            b.call("Pinger", 1, "Ping", request_id=99),
        )
        assert ra[0]["response"] == {} and rb[0]["response"] == {}


# ---------------------------------------------------------------------------- more wire rules


WHOLE_SECOND_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


async def test_auto_prune(fresh_emulator):
    emulator = fresh_emulator
    label = unique("prune")
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        uri = (await _create(c, label, {"a": b64("1")}))["response"]["results"][0]["result"]

        async def update(arg):
            reply, text = await c.call("Secrets", 2, "UpdateSecrets", {"args": [arg]})
            _assert_envelope(reply, text)
            assert reply["response"]["results"] == [{}], reply
        await update({"uri": uri, "content": {"data": {"a": b64("2")}}})
        await update({"uri": uri, "content": {"data": {"a": b64("3")}}})
        (s,) = await _list(c, emulator, uri=uri)
        assert sorted(r["revision"] for r in s["revisions"]) == [1, 2, 3]
        # auto-prune alone prunes the obsolete revisions (nobody consumes them) at once
        await update({"uri": uri, "auto-prune": True})
        (s,) = await _list(c, emulator, uri=uri)
        assert [r["revision"] for r in s["revisions"]] == [3]
        assert "auto-prune" not in s, "auto-prune is not returned by ListSecrets"
        # with auto-prune on, a new revision prunes the previous one within the call
        await update({"uri": uri, "content": {"data": {"a": b64("4")}}})
        (s,) = await _list(c, emulator, uri=uri)
        assert [r["revision"] for r in s["revisions"]] == [4]
        assert s["latest-revision"] == 4


async def test_timestamps_and_revision_reveal(emulator):
    label = unique("ts")
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        uri = (await _create(c, label, {"a": b64("1")}))["response"]["results"][0]["result"]
        reply, _ = await c.call("Secrets", 2, "UpdateSecrets", {"args": [
            {"uri": uri, "content": {"data": {"a": b64("2")}}}]})
        assert reply["response"]["results"] == [{}]
        (s,) = await _list(c, emulator, uri=uri)
        for t in [s["create-time"], s["update-time"]] + \
                 [r[k] for r in s["revisions"] for k in ("create-time", "update-time")]:
            assert WHOLE_SECOND_UTC.match(t), f"not RFC 3339 UTC whole seconds: {t}"
        # a revision filter with show-secrets reveals that revision
        (s1,) = await _list(c, emulator, uri=uri, revision=1)
        assert s1["value"] == {"data": {"a": b64("1")}}
        assert s1["latest-revision"] == 2


async def test_revoke_by_uri(emulator):
    label = unique("rv")
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        uri = (await _create(c, label, {"a": b64("1")}))["response"]["results"][0]["result"]
        reply, _ = await c.call("Secrets", 2, "GrantSecret",
                                {"uri": uri, "label": "", "applications": ["wordpress"]})
        assert reply["response"]["results"] == [{}]
        (s,) = await _list(c, emulator, uri=uri)
        assert [a["target-tag"] for a in s["access"]] == ["application-wordpress"]
        reply, _ = await c.call("Secrets", 2, "RevokeSecret",
                                {"uri": uri, "applications": ["wordpress", "nosuchapp"]})
        assert reply["response"]["results"] == [{}, {}]
        (s,) = await _list(c, emulator, uri=uri)
        assert "access" not in s
        reply, _ = await c.call("Secrets", 2, "GrantSecret",
                                {"uri": "garbage!", "applications": ["mysql"]})
        assert _err(reply) == ('secret URI "garbage!" not valid', "not valid")


async def test_model_unset_secret_backend(emulator):
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        reply, text = await c.call("ModelConfig", 3, "ModelSet",
                                   {"config": {"secret-backend": "auto"}})
        _assert_envelope(reply, text)
        assert reply["response"] == {}
        reply, _ = await c.call("ModelConfig", 3, "ModelGet", omit_params=True)
        assert reply["response"]["config"]["secret-backend"] == {"value": "auto", "source": "model"}
        reply, _ = await c.call("ModelConfig", 3, "ModelUnset", {"keys": ["secret-backend"]})
        assert reply["response"] == {}
        reply, _ = await c.call("ModelConfig", 3, "ModelGet")
        assert reply["response"]["config"]["secret-backend"] == {"value": "auto",
                                                                 "source": "default"}
        reply, _ = await c.call("ModelConfig", 3, "ModelSet", {"config": {"secret-backend": 5}})
        assert _err(reply) == ('"secret-backend" config value is not a string', "not valid")


async def test_backend_names_filter_and_counts(fresh_emulator):
    emulator = fresh_emulator
    async with RawConn.open(emulator, _model_path(emulator)) as m:
        await m.login(emulator)
        for _ in range(3):
            await _create(m, unique("cnt"), {"a": b64("1")})
    async with RawConn.open(emulator, "/api") as c:
        await c.login(emulator)
        reply, text = await c.call("SecretBackends", 1, "ListSecretBackends",
                                   {"names": ["internal", "nosuch"], "reveal": False})
        _assert_envelope(reply, text)
        (b,) = reply["response"]["results"]
        assert b == {"result": {"name": "internal", "backend-type": "controller", "config": {}},
                     "id": emulator.controller_uuid, "num-secrets": 3, "status": "active"}
        reply, _ = await c.call("ModelManager", 10, "ModelInfo",
                                {"entities": [{"tag": f"model-{emulator.model_uuid}"}]})
        info = reply["response"]["results"][0]["result"]
        assert isinstance(info["agent-version"], str)
        sb = info["secret-backends"]
        assert [(x["result"]["name"], x["id"], x["num-secrets"]) for x in sb] == [
            ("internal", "", 3)], sb
        reply, _ = await c.call("ModelManager", 10, "ListModels", {"tag": "user-admin"})
        models = reply["response"]["user-models"]
        assert [m["model"]["uuid"] for m in models if m["model"]["name"] == "dev"] == [
            emulator.model_uuid]
        assert all("last-connection" in m for m in models)
        keys = [(m["model"]["name"], m["model"]["owner-tag"]) for m in models]
        assert keys == sorted(keys)
        reply, _ = await c.call("ModelManager", 10, "ListModels", {"tag": "foo"})
        assert _err(reply) == ('"foo" is not a valid user tag', None)


async def _backend_call(c: RawConn, method: str, args: list) -> list:
    reply, text = await c.call("SecretBackends", 1, method, {"args": args})
    _assert_envelope(reply, text)
    assert "error" not in reply, reply
    return reply["response"]["results"]


async def test_backend_wire_validation(emulator):
    v = unique("bw")
    ep = "https://127.0.0.1:8200"
    await emulator.control("SetBackendReachable", {"name": v, "reachable": True})
    async with RawConn.open(emulator, "/api") as c:
        await c.login(emulator)
        r = await _backend_call(c, "AddSecretBackends", [
            {"name": "", "backend-type": "vault", "config": {"endpoint": ep}},
            {"name": v, "backend-type": "vault", "config": {"endpoint": ep},
             "token-rotate-interval": 600 * 10**9},
            {"name": v, "backend-type": "vault", "config": {"endpoint": ep},
             "token-rotate-interval": 0},
            {"name": v, "backend-type": "vault",
             "config": {"endpoint": ep, "client-cert": "PEM"}},
            {"name": v, "backend-type": "vault",
             "config": {"endpoint": ep, "mount-path": "secrets", "namespace": "ns"},
             "token-rotate-interval": 3600 * 10**9},
        ])
        assert r[0]["error"] == {"message": "missing backend name not valid", "code": "not valid"}
        assert r[1]["error"] == {"message": 'token rotate interval "10m0s" less than 1h not valid',
                                 "code": "not valid"}
        assert r[2]["error"] == {"message": "secret backend missing next rotate time not valid",
                                 "code": "not valid"}
        assert r[3]["error"]["message"].startswith('invalid config for provider "vault": ')
        assert r[3]["error"]["message"].endswith("vault config missing client key not valid")
        assert r[4] == {}, "mount-path is a valid vault key on 3.6.12+"

        reply, _ = await c.call("SecretBackends", 1, "ListSecretBackends",
                                {"names": [v], "reveal": True})
        (b,) = reply["response"]["results"]
        assert b["result"]["token-rotate-interval"] == 3600 * 10**9
        assert b["result"]["config"] == {"endpoint": ep, "mount-path": "secrets", "namespace": "ns"}

        # reset deletes keys; immutable keys stay immutable (namespace from 3.6.12)
        r = await _backend_call(c, "UpdateSecretBackends", [
            {"name": v, "config": {"tls-server-name": "x"}, "token-rotate-interval": None},
        ])
        assert r == [{}]
        r = await _backend_call(c, "UpdateSecretBackends", [
            {"name": v, "reset": ["tls-server-name"], "token-rotate-interval": None},
            {"name": v, "config": {"namespace": "other"}, "token-rotate-interval": None},
            {"name": v, "config": {"mount-path": "other"}, "token-rotate-interval": None},
            {"name": "", "token-rotate-interval": None},
        ])
        assert r[0] == {}
        assert r[1]["error"]["message"] == \
            'invalid config for provider "vault": cannot change immutable field "namespace"'
        assert r[2]["error"]["message"] == \
            'invalid config for provider "vault": cannot change immutable field "mount-path"'
        assert r[3]["error"] == {"message": "missing backend name not valid", "code": "not valid"}
        reply, _ = await c.call("SecretBackends", 1, "ListSecretBackends",
                                {"names": [v], "reveal": True})
        assert "tls-server-name" not in reply["response"]["results"][0]["result"]["config"]

        r = await _backend_call(c, "RemoveSecretBackends", [
            {"name": "auto"}, {"name": ""}, {"name": v}])
        assert r[0]["error"] == {"message": "backend %!q(MISSING) not valid", "code": "not valid"}
        assert r[1]["error"] == {"message": "missing backend name not valid", "code": "not valid"}
        assert r[2] == {}


async def test_kubernetes_backend_rules(emulator):
    k = unique("k8s")
    await emulator.control("SetBackendReachable", {"name": k, "reachable": True})
    async with RawConn.open(emulator, "/api") as c:
        await c.login(emulator)
        cfg = {"endpoint": "https://127.0.0.1:6443", "namespace": "secrets"}
        r = await _backend_call(c, "AddSecretBackends", [
            {"name": k, "backend-type": "kubernetes", "config": cfg,
             "token-rotate-interval": 3600 * 10**9},
            {"name": k, "backend-type": "kubernetes", "config": {"endpoint": cfg["endpoint"]}},
            {"name": k, "backend-type": "kubernetes", "config": cfg | {"token": "t"}},
        ])
        assert r[0]["error"]["message"].endswith("k8s config missing service account not valid")
        assert r[1]["error"]["message"].startswith('invalid config for provider "kubernetes": ')
        assert r[2] == {}
        reply, _ = await c.call("SecretBackends", 1, "ListSecretBackends",
                                {"names": [k], "reveal": False})
        (b,) = reply["response"]["results"]
        assert b["result"]["backend-type"] == "kubernetes"
        assert b["result"]["config"] == cfg, "token is hidden without reveal"

        # Validated, then stored and listed as sent (juju-api.md §10.6): a string for a
        # list-typed key stays a string.
        k2 = unique("k8s")
        await emulator.control("SetBackendReachable", {"name": k2, "reachable": True})
        sent = cfg | {"token": "t", "ca-certs": "-----BEGIN CERTIFICATE-----"}
        r = await _backend_call(c, "AddSecretBackends", [
            {"name": k2, "backend-type": "kubernetes", "config": sent}])
        assert r == [{}]
        reply, _ = await c.call("SecretBackends", 1, "ListSecretBackends",
                                {"names": [k2], "reveal": True})
        (b,) = reply["response"]["results"]
        assert b["result"]["config"] == sent


async def test_create_with_supplied_uri(fresh_emulator):
    """3.3 – 3.6.14 use a supplied URI as the new secret's ID (3.6.15+ reject it)."""
    emulator = fresh_emulator
    given = "secret:9fvb66662rqormfsip9g"
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        await c.login(emulator)
        reply = await _create(c, unique("given"), {"a": b64("1")}, uri=given)
        assert reply["response"]["results"] == [{"result": given}]
        (s,) = await _list(c, emulator, uri=given)
        assert s["uri"] == given


async def test_reader_login_and_second_login_on_api(emulator):
    reader = emulator.user_with_access("read")
    async with RawConn.open(emulator, _model_path(emulator)) as c:
        reply = await c.login(emulator, user=reader)
        ui = reply["response"]["user-info"]
        assert ui["identity"] == f"user-{reader}"
        assert ui["model-access"] == "read"
        assert ui["controller-access"] == "login"
    async with RawConn.open(emulator, "/api") as c:
        await c.login(emulator)
        reply = await c.login(emulator)
        # [inferred] in juju-api.md §2.3
        assert _err(reply) == ('facade "Admin" not supported for controller API connection',
                               "not supported")
