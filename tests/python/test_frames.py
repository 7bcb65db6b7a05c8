"""Frame-log validation against juju-facade-schemas:

(a) the logs written by this session's emulators (this module runs last, see conftest),
(b) every *.jsonl under $RUST_FRAME_LOG_DIR (the Rust client's integration tests),
(c) unit tests proving the validator rejects bad frames.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

import conftest
import frames
from helpers import RawConn, b64, bounded, controller_conn, model_conn, unique

U = "26e9b4dd-e657-4a2c-8f25-222c879fd45d"


@pytest.fixture(scope="module")
def schemas():
    return frames.SchemaSet()


# ---------------------------------------------------------------------------- (a)


async def test_workload_frames_validate(frame_log_dir):
    """A small mixed workload (successes and errors on both connection kinds); the
    context manager validates the log when the emulator stops."""
    with conftest.running_emulator(frame_log_dir) as emu:
        async with model_conn(emu) as model, controller_conn(emu) as controller:
            name = unique("fw")
            await bounded(model.add_secret(name, ["password=one"], info="d"))
            await bounded(model.update_secret(name, ["password=two"], new_name=name, info="d"))
            await bounded(model.grant_secret(name, "mysql"))
            await bounded(model.list_secrets(show_secrets=True))
            await bounded(model.get_config())
            await bounded(controller.list_secret_backends(reveal=True))
            await bounded(controller.remove_secret_backends(unique("none")))
            with pytest.raises(Exception):
                await bounded(model.add_secret(name, ["password=dup"]))
        async with RawConn.open(emu, f"/model/{emu.model_uuid}/api") as c:
            await c.call("Secrets", 2, "ListSecrets", {})  # before login
            await c.login(emu)
            await c.call("Foo", 1, "Bar", {})
            await c.call("Secrets", 2, "CreateSecrets",
                         {"args": [{"label": unique("fw"), "content": {"data": {"a": b64("x")}}}]})
        log = emu.frame_log
    rep = conftest.FRAME_REPORTS[log]
    assert rep.validated > 0 and rep.error_frames > 0, rep.summary()


def test_session_frame_logs_validate(schemas):
    logs = [p for p in conftest.FRAME_LOGS if p in conftest.FRAME_REPORTS]
    if not logs:  # only when this test is selected alone
        pytest.skip("no emulator of this session has written a frame log")
    rep = frames.validate_files(logs, schemas)
    print(f"\npython-test emulators ({len(logs)} logs): {rep.summary()}")
    assert rep.frames > 0
    assert not rep.problems, "\n".join(rep.problems[:50])
    unlisted = sorted(set(rep.skipped) - set(frames.UNSCHEMED))
    assert not unlisted, f"frames of facades without a schema: {unlisted}"
    # The facades this suite exercises must actually have been checked.
    assert rep.validated > 0


def test_env_frame_log_dir(tmp_path, schemas):
    """JUJU_EMULATOR_FRAME_LOG=<dir> makes an emulator started without --frame-log
    write <dir>/<random>.jsonl (an explicit --frame-log takes precedence)."""
    import asyncio

    envdir = tmp_path / "envlogs"
    envdir.mkdir()
    (tmp_path / "state").mkdir()

    async def ping(emu):
        async with RawConn.open(emu, "/api") as c:
            await c.login(emu)
            await c.call("Pinger", 1, "Ping")

    emu = conftest.Emulator(state_dir=tmp_path / "state", frame_log=None,
                            env={"JUJU_EMULATOR_FRAME_LOG": str(envdir)})
    try:
        emu.start()
        asyncio.run(ping(emu))
    finally:
        emu.stop()
    files = list(envdir.glob("*.jsonl"))
    assert len(files) == 1, f"expected one <random>.jsonl under JUJU_EMULATOR_FRAME_LOG: {files}"
    entries = [json.loads(line) for line in files[0].read_text().splitlines() if line]
    assert any(e.get("type") == "Pinger" and e.get("conn") == "controller" for e in entries)
    rep = frames.validate_files(files, schemas)
    assert not rep.problems, rep.problems


# ---------------------------------------------------------------------------- (b)


def test_rust_frame_logs_validate(schemas):
    env = os.environ.get("RUST_FRAME_LOG_DIR")
    if not env:
        pytest.skip("RUST_FRAME_LOG_DIR not set")
    root = Path(env)
    assert root.is_dir(), f"RUST_FRAME_LOG_DIR={root} is not a directory"
    files = sorted(root.rglob("*.jsonl"))
    rep = frames.validate_files(files, schemas)
    print(f"\nRust frame logs ({len(files)} files): {rep.summary()}")
    assert rep.frames > 0, f"RUST_FRAME_LOG_DIR={root} holds no frames ({len(files)} files)"
    assert not rep.problems, "\n".join(rep.problems[:50])
    missing = [n for n in frames.EXPECTED_RUST_LOGS if not (root / f"{n}.jsonl").is_file()]
    assert not missing, f"test binaries left no frame log: {missing}"
    unlisted = sorted(set(rep.skipped) - set(frames.UNSCHEMED))
    assert not unlisted, f"frames of facades without a schema (add one, or list the reason in frames.UNSCHEMED): {unlisted}"


# ---------------------------------------------------------------------------- (c) unit


LIST_OK = {
    "conn": "model", "type": "Secrets", "version": 2, "request": "ListSecrets",
    "params": {"filter": None, "show-secrets": True},
    "response": {"results": [{
        "uri": "secret:9fvb66662rqormfsip9g", "version": 1, "owner-tag": f"model-{U}",
        "label": "db", "latest-revision": 1, "latest-revision-checksum": "ab",
        "create-time": "2025-01-10T09:00:00Z", "update-time": "2025-01-10T09:00:00Z",
        "revisions": [{"revision": 1, "backend-name": "internal",
                       "create-time": "2025-01-10T09:00:00Z",
                       "update-time": "2025-01-10T09:00:00Z"}],
        "value": {"data": {"a": "Yg=="}},
    }]},
}

CREATE_OK = {
    "conn": "model", "type": "Secrets", "version": 2, "request": "CreateSecrets",
    "params": {"args": [{"content": {"data": {"a": "Yg=="}}, "description": "", "label": "x"}]},
    "response": {"results": [{"result": "secret:9fvb66662rqormfsip9g"}]},
}


def _problems(frame, schemas):
    return frames.validate_frame(frame, schemas).problems


def test_validator_accepts_good_frames(schemas):
    assert _problems(LIST_OK, schemas) == []
    assert _problems(CREATE_OK, schemas) == []
    # revisions: null (Go nil slice), null request members, unknown request keys
    f = copy.deepcopy(LIST_OK)
    f["response"]["results"][0]["revisions"] = None
    f["params"] = {"filter": {"owner-tag": None}, "show-secrets": None, "extra": 1}
    assert _problems(f, schemas) == []


def test_validator_rejects_missing_uri(schemas):
    f = copy.deepcopy(LIST_OK)
    del f["response"]["results"][0]["uri"]
    probs = _problems(f, schemas)
    assert any("'uri' is a required property" in p for p in probs), probs


def test_validator_rejects_error_null(schemas):
    f = copy.deepcopy(CREATE_OK)
    f["response"]["results"][0]["error"] = None
    probs = _problems(f, schemas)
    assert any("results/0/error" in p for p in probs), probs


def test_validator_rejects_other_bad_responses(schemas):
    f = copy.deepcopy(LIST_OK)
    f["response"]["results"][0]["rotate-policy"] = None  # omitempty field sent as null
    assert _problems(f, schemas)
    f = copy.deepcopy(LIST_OK)
    f["response"]["results"][0]["bogus"] = 1  # unknown member
    assert _problems(f, schemas)
    f = copy.deepcopy(LIST_OK)
    f["response"]["results"][0]["create-time"] = "10/01/2025"  # not RFC 3339
    assert _problems(f, schemas)
    f = copy.deepcopy(LIST_OK)
    f["response"]["results"][0]["access"] = None  # omitempty array: left out, never null
    assert _problems(f, schemas)
    f = copy.deepcopy(LIST_OK)
    f["response"]["results"][0]["latest-revision"] = "1"
    assert _problems(f, schemas)
    # ErrorResults item with an Error lacking `code`
    f = {"conn": "model", "type": "Secrets", "version": 2, "request": "RemoveSecrets",
         "params": {"args": [{"label": "x"}]},
         "response": {"results": [{"error": {"message": "secret \"x\" not found"}}]}}
    assert _problems(f, schemas)
    # a void method must answer {}
    f = {"conn": "model", "type": "ModelConfig", "version": 3, "request": "ModelSet",
         "params": {"config": {"secret-backend": "auto"}}, "response": {"ok": True}}
    assert _problems(f, schemas)
    # success response for a method the schema lacks
    f = {"conn": "model", "type": "Secrets", "version": 2, "request": "Nope",
         "params": {}, "response": {}}
    assert _problems(f, schemas)


def test_validator_request_relaxations(schemas):
    # python-libjuju's AddSecretBackends: null id / token-rotate-interval, Go any values
    f = {"conn": "controller", "type": "SecretBackends", "version": 1,
         "request": "AddSecretBackends",
         "params": {"args": [{"id": None, "backend-type": "vault", "name": "v",
                              "config": {"endpoint": "https://x", "n": 3, "b": True},
                              "token-rotate-interval": None}]},
         "response": {"results": [{}]}}
    assert _problems(f, schemas) == []
    # but a wrong type in a request is still caught
    f["params"]["args"][0]["name"] = 5
    assert _problems(f, schemas)


def test_validator_response_adjustments(schemas):
    # ModelGet: interface{} values may be any JSON
    f = {"conn": "model", "type": "ModelConfig", "version": 3, "request": "ModelGet",
         "params": {}, "response": {"config": {
             "secret-backend": {"value": "auto", "source": "default"},
             "n": {"value": 3, "source": "default"}, "l": {"value": None, "source": "model"}}}}
    assert _problems(f, schemas) == []
    # ModelInfo: agent-version is a string; users/machines/secret-backends may be null
    info = {"name": "dev", "type": "iaas", "uuid": U, "controller-uuid": U,
            "is-controller": False, "cloud-tag": "cloud-x", "owner-tag": "user-admin",
            "life": "alive", "status": {"status": "available", "info": "",
                                        "since": "2025-01-10T09:00:00Z"},
            "users": None, "machines": None, "secret-backends": None,
            "sla": {"level": "unsupported", "owner": ""}, "agent-version": "3.6.14"}
    f = {"conn": "controller", "type": "ModelManager", "version": 10, "request": "ModelInfo",
         "params": {"entities": [{"tag": f"model-{U}"}]},
         "response": {"results": [{"result": info}]}}
    assert _problems(f, schemas) == [], _problems(f, schemas)
    f2 = copy.deepcopy(f)
    f2["response"]["results"][0]["result"]["agent-version"] = {"Major": 3}
    assert _problems(f2, schemas)
    # Login: HostPort's embedded Address pseudo-property is not required
    login = {"conn": "model", "type": "Admin", "version": 3, "request": "Login",
             "params": {"auth-tag": "user-admin", "credentials": "pw",
                        "client-version": "3.6.1.3"},
             "response": {"servers": [[{"value": "127.0.0.1", "type": "ipv4",
                                        "scope": "local-machine", "port": 17070}]],
                          "model-tag": f"model-{U}", "controller-tag": f"controller-{U}",
                          "user-info": {"display-name": "", "identity": "user-admin",
                                        "controller-access": "superuser",
                                        "model-access": "admin"},
                          "facades": [{"name": "Pinger", "versions": [1]}],
                          "server-version": "3.6.14"}}
    assert _problems(login, schemas) == []


def test_validator_error_frames(schemas):
    good = {"conn": "model", "type": "Secrets", "version": 2, "request": "ListSecrets",
            "params": {}, "response": {}, "error": "permission denied",
            "error-code": "unauthorized access"}
    assert _problems(good, schemas) == []
    for bad in ({"error": ""}, {"error": None}, {"error-code": ""}, {"error-code": None}):
        f = good | bad
        assert _problems(f, schemas), bad
    # error frames are not schema-validated: an error on an unknown method is fine
    f = good | {"request": "Foo", "error": "no such request - method Secrets(2).Foo is not "
                "implemented", "error-code": "not implemented"}
    assert _problems(f, schemas) == []


def test_validator_skips_unschemed(schemas):
    rep = frames.validate_lines(
        [json.dumps({"conn": "model", "type": t, "version": v, "request": "X",
                     "params": {}, "response": {}})
         for t, v in [("Client", 8), ("AllWatcher", 3), ("Emulator", 1), ("Secrets", 1)]]
        + ["", "not json"],
        schemas,
    )
    assert rep.skipped == {"Client": 1, "AllWatcher": 1, "Emulator": 1, "Secrets v1": 1}
    assert rep.frames == 5 and len(rep.problems) == 1 and "invalid JSON" in rep.problems[0]


def test_validator_cli(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(LIST_OK) + "\n" + json.dumps(CREATE_OK) + "\n")
    assert frames.main([str(tmp_path)]) == 0
    bad = tmp_path / "sub" / "bad.jsonl"
    bad.parent.mkdir()
    f = copy.deepcopy(CREATE_OK)
    f["response"]["results"][0]["error"] = None
    bad.write_text(json.dumps(f) + "\n")
    assert frames.main([str(tmp_path)]) == 1
    assert "results/0/error" in capsys.readouterr().out
