"""Validate the emulator's frame-log JSONL files against the Juju facade schemas.

Each line of a frame log is one RPC call:

    {"conn": "controller"|"model", "type": F, "version": V, "request": M,
     "params": <verbatim>, "response": <response member>,
     "error": <str, absent if none>, "error-code": <str, absent if none>}

The schemas are the python-libjuju copies in juju-facade-schemas/ (Juju 3.6.0). Their
README lists generator artefacts; every adjustment it asks for is applied here:

* capitalised embedded-struct pseudo-properties (``UpsertSecretArg``, ``SecretBackend``,
  ``Address``, ``ModelSLAInfo``) are dropped from ``properties`` and ``required``;
* Go ``interface{}`` subschemas (``{"type":"object","additionalProperties":true}``)
  become ``{}``;
* ``Number`` (version.Number) becomes ``{"type":"string"}``;
* ``Macaroon`` is not validated (``{}``);
* requests: ``null`` is allowed for every field, and neither ``required`` nor
  ``additionalProperties: false`` is enforced;
* success responses: ``required`` and ``additionalProperties: false`` are enforced, and a
  required (non-omitempty) array may be ``null`` because Go emits empty slices as null;
  ``date-time`` strings must be RFC 3339;
* error frames are not schema-validated; they must carry a non-empty ``error`` string (and
  ``error-code``, when present, must be a non-empty string).

Facades without a schema file (Client, AllWatcher, the Emulator control facade, ...) and
facade versions the schema does not describe are skipped and counted.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import jsonschema

REPO_ROOT = Path(__file__).resolve().parents[2]

ANY_GO_VALUE = {"type": "object", "additionalProperties": True}

# RFC 3339 date-time, as Go's time.Time marshals it (fractional seconds optional).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)

_FORMAT_CHECKER = jsonschema.FormatChecker(formats=())

# Facades (or facade versions) whose frames are not validated, each with the reason. A
# frame of any other facade or version that has no schema fails the run: a new facade
# the emulator serves must come with its schema, or be listed here with a reason.
UNSCHEMED = {
    "Client": "Juju's published schemas hold no Client facade; the emulator serves only "
    "the WatchAll that python-libjuju calls on connect",
    "AllWatcher": "not in the published schemas; python-libjuju's connect-time watcher only",
    "Emulator": "the emulator's own control facade, not part of Juju",
    "Secrets v1": "the schemas describe Secrets v2; v1 is served for older clients and "
    "checked by tests/python/test_raw_protocol.py",
    # Called on purpose by the protocol tests, which check that the emulator refuses them
    # as Juju does; their frames are error frames.
    "Foo": "a facade that does not exist (the refusal is what is tested)",
    "Secrets v0": "a version that does not exist (the refusal is what is tested)",
    "Secrets v3": "a version that does not exist (the refusal is what is tested)",
}

# Facade versions validated against the schema of another version, each with the reason.
SCHEMA_VERSION_FOR = {
    # The shared schema describes Application v19 (Juju 3.3.0's schema file). Juju 3.6
    # serves v15-v22 and python-libjuju 3.6 uses v20; its v19 and v20 clients send the
    # same requests with the same parameter and result types for the config calls, and
    # the 3.6 Go params of those calls match the v19 schema.
    ("Application", 20): 19,
    ("Application", 21): 19,
    ("Application", 22): 19,
}

# Test binaries that talk to Juju and must leave a frame log under RUST_FRAME_LOG_DIR:
# a run that lost one would otherwise validate nothing and pass.
EXPECTED_RUST_LOGS = ["e2e", "e2e-pre36", "e2e_grants_backends", "secret_lifecycle", "grants"]



@_FORMAT_CHECKER.checks("date-time")
def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return bool(_RFC3339.match(value))


def schema_dir() -> Path:
    env = os.environ.get("JUJU_FACADE_SCHEMAS")
    if env:
        return Path(env)
    return (REPO_ROOT / ".." / "shared" / "juju-facade-schemas").resolve()


# --------------------------------------------------------------------------- schema prep


def _relax_interfaces(node: Any) -> Any:
    """Replace Go interface{} subschemas with 'anything', recursively."""
    if isinstance(node, dict):
        for k, v in list(node.items()):
            node[k] = {} if v == ANY_GO_VALUE else _relax_interfaces(v)
        return node
    if isinstance(node, list):
        return [_relax_interfaces(v) for v in node]
    return node


def _common_defs(raw_defs: dict) -> dict:
    defs = _relax_interfaces(copy.deepcopy(raw_defs))
    for name, d in defs.items():
        if name == "Number":
            continue
        props = d.get("properties", {})
        for k in [k for k in props if k[:1].isupper()]:
            props.pop(k)
            if k in d.get("required", []):
                d["required"].remove(k)
        if "required" in d and not d["required"]:
            d.pop("required")
    if "Number" in defs:
        defs["Number"] = {"type": "string"}
    if "Macaroon" in defs:
        defs["Macaroon"] = {}
    return defs


def _nullable(schema: dict) -> dict:
    return {"anyOf": [{"type": "null"}, schema]}


def _request_walk(node: Any) -> Any:
    """Requests: allow null everywhere a field sits; drop required/additionalProperties."""
    if isinstance(node, list):
        return [_request_walk(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "required":
            continue
        if k == "additionalProperties" and v is False:
            continue
        if k in ("properties", "patternProperties") and isinstance(v, dict):
            out[k] = {pk: _nullable(_request_walk(pv)) for pk, pv in v.items()}
        else:
            out[k] = _request_walk(v)
    return out


def _request_defs(raw_defs: dict) -> dict:
    return {name: _request_walk(d) for name, d in _common_defs(raw_defs).items()}


def _response_defs(raw_defs: dict) -> dict:
    defs = _common_defs(raw_defs)
    for d in defs.values():
        props = d.get("properties", {})
        for req in d.get("required", []):
            p = props.get(req)
            if isinstance(p, dict) and p.get("type") == "array":
                # Go emits a nil slice without omitempty as null.
                props[req] = _nullable(p)
    return defs


@dataclass
class _Method:
    params_ref: str | None
    result_ref: str | None


class FacadeSchema:
    def __init__(self, raw: dict):
        self.name: str = raw["Name"]
        self.version: int = raw["Version"]
        schema = raw["Schema"]
        raw_defs = schema.get("definitions", {})
        self.methods: dict[str, _Method] = {}
        for m, body in schema.get("properties", {}).items():
            props = body.get("properties", {})
            self.methods[m] = _Method(
                params_ref=props.get("Params", {}).get("$ref"),
                result_ref=props.get("Result", {}).get("$ref"),
            )
        self._req_defs = _request_defs(raw_defs)
        self._resp_defs = _response_defs(raw_defs)
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}

    def _validator(self, kind: str, ref: str):
        key = (kind, ref)
        v = self._validators.get(key)
        if v is None:
            defs = self._req_defs if kind == "request" else self._resp_defs
            schema: dict = {"$ref": ref, "definitions": defs}
            if kind == "request":
                schema = _nullable(schema) | {"definitions": defs}
            v = jsonschema.Draft7Validator(schema, format_checker=_FORMAT_CHECKER)
            self._validators[key] = v
        return v

    def request_errors(self, method: str, params: Any) -> list[str]:
        m = self.methods[method]
        if m.params_ref is None:
            if params in (None, {}):
                return []
            return [f"params for a method without Params must be {{}} or absent, got {_short(params)}"]
        return _errors(self._validator("request", m.params_ref), params)

    def response_errors(self, method: str, response: Any) -> list[str]:
        m = self.methods[method]
        if m.result_ref is None:
            if response == {}:
                return []
            return [f"response of a method without Result must be {{}}, got {_short(response)}"]
        return _errors(self._validator("response", m.result_ref), response)


def _short(v: Any, limit: int = 120) -> str:
    s = json.dumps(v, sort_keys=True)
    return s if len(s) <= limit else s[:limit] + "..."


def _leaf_errors(err) -> list:
    """Descend through the anyOf[null, X] wrappers to the errors that matter."""
    if err.validator == "anyOf" and err.context:
        inner = [
            c
            for c in err.context
            if not (c.validator == "type" and c.validator_value == "null")
        ]
        if inner:
            out = []
            for c in inner:
                out.extend(_leaf_errors(c))
            return out
    return [err]


def _errors(validator, instance: Any) -> list[str]:
    out = []
    leaves = [leaf for e in validator.iter_errors(instance) for leaf in _leaf_errors(e)]
    for err in sorted(leaves, key=lambda e: [str(p) for p in e.absolute_path]):
        path = "/".join(str(p) for p in err.absolute_path) or "<root>"
        # Keep messages short: they may quote instance values.
        out.append(f"at {path}: {err.message[:200]}")
    return out


class SchemaSet:
    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory) if directory else schema_dir()
        if not self.directory.is_dir():
            raise FileNotFoundError(f"facade schema directory not found: {self.directory}")
        self._cache: dict[str, FacadeSchema | None] = {}

    def get(self, facade: str) -> FacadeSchema | None:
        if facade not in self._cache:
            path = self.directory / f"{facade}.json"
            if not re.fullmatch(r"[A-Za-z0-9]+", facade or "") or not path.is_file():
                self._cache[facade] = None
            else:
                self._cache[facade] = FacadeSchema(json.loads(path.read_text()))
        return self._cache[facade]


# --------------------------------------------------------------------------- validation


@dataclass
class Report:
    frames: int = 0
    validated: int = 0
    error_frames: int = 0
    skipped: Counter = field(default_factory=Counter)  # facade (or facade vN) -> count
    problems: list[str] = field(default_factory=list)

    def merge(self, other: "Report") -> None:
        self.frames += other.frames
        self.validated += other.validated
        self.error_frames += other.error_frames
        self.skipped.update(other.skipped)
        self.problems.extend(other.problems)

    def summary(self) -> str:
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"
        return (
            f"{self.frames} frames, {self.validated} schema-validated, "
            f"{self.error_frames} error frames, skipped: {skipped}, "
            f"{len(self.problems)} problems"
        )


_FRAME_KEYS = {"conn", "type", "version", "request", "params", "response", "error", "error-code"}


def validate_frame(frame: Any, schemas: SchemaSet, where: str = "frame") -> Report:
    """Validate one frame-log entry. Returns a one-frame Report."""
    rep = Report(frames=1)
    if not isinstance(frame, dict):
        rep.problems.append(f"{where}: not a JSON object")
        return rep
    extra = set(frame) - _FRAME_KEYS
    if extra:
        rep.problems.append(f"{where}: unknown frame-log keys {sorted(extra)}")
    facade, version, method = frame.get("type"), frame.get("version"), frame.get("request")
    label = f"{where} {facade}({version}).{method}"
    if frame.get("conn") not in ("controller", "model"):
        rep.problems.append(f"{label}: conn must be 'controller' or 'model', got {frame.get('conn')!r}")
    if not isinstance(facade, str) or not isinstance(method, str) or not isinstance(version, int):
        rep.problems.append(f"{label}: type/request must be strings and version an int")
        return rep

    is_error = "error" in frame
    if is_error:
        rep.error_frames += 1
        err = frame["error"]
        if not isinstance(err, str) or not err:
            rep.problems.append(f"{label}: error frame must carry a non-empty error string, got {err!r}")
        if "error-code" in frame:
            code = frame["error-code"]
            if not isinstance(code, str) or not code:
                rep.problems.append(
                    f"{label}: error-code must be absent or a non-empty string, got {code!r}"
                )
        resp = frame.get("response", {})
        if not isinstance(resp, dict):
            rep.problems.append(f"{label}: response of an error frame must be an object")
    elif "error-code" in frame:
        rep.problems.append(f"{label}: error-code without error")

    fs = schemas.get(facade)
    if fs is None:
        rep.skipped[facade] += 1
        return rep
    if fs.version != SCHEMA_VERSION_FOR.get((facade, version), version):
        rep.skipped[f"{facade} v{version}"] += 1
        return rep
    if method not in fs.methods:
        if not is_error:
            rep.problems.append(f"{label}: success response for a method the schema does not know")
        return rep

    req_errs = fs.request_errors(method, frame.get("params"))
    rep.problems.extend(f"{label} request {e}" for e in req_errs)
    if not is_error:
        if "response" not in frame:
            rep.problems.append(f"{label}: success frame without response")
        else:
            resp_errs = fs.response_errors(method, frame["response"])
            rep.problems.extend(f"{label} response {e}" for e in resp_errs)
    rep.validated += 1
    return rep


def validate_lines(lines: Iterable[str], schemas: SchemaSet, source: str = "log") -> Report:
    rep = Report()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{n}"
        try:
            frame = json.loads(line)
        except json.JSONDecodeError as e:
            rep.frames += 1
            rep.problems.append(f"{where}: invalid JSON ({e.msg})")
            continue
        rep.merge(validate_frame(frame, schemas, where))
    return rep


def validate_file(path: Path | str, schemas: SchemaSet) -> Report:
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        return validate_lines(fh, schemas, source=path.name)


def validate_files(paths: Iterable[Path | str], schemas: SchemaSet) -> Report:
    rep = Report()
    for p in paths:
        rep.merge(validate_file(p, schemas))
    return rep


def main(argv: list[str] | None = None) -> int:
    """CLI: python frames.py FILE_OR_DIR...  (exit 1 on any problem)."""
    import sys

    args = argv if argv is not None else sys.argv[1:]
    files: list[Path] = []
    for a in args:
        p = Path(a)
        files.extend(sorted(p.rglob("*.jsonl")) if p.is_dir() else [p])
    rep = validate_files(files, SchemaSet())
    for prob in rep.problems:
        print(prob)
    print(rep.summary())
    return 1 if rep.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
