"""Fixtures: start the juju-emulator binary, hand its connection info to the tests,
stop it, and validate every frame it logged against the facade schemas."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))

import frames  # noqa: E402
from helpers import ControlError  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CALL_TIMEOUT = 15.0

# Every frame log written by an emulator started from these tests (in start order).
FRAME_LOGS: list[Path] = []
# Problems found when a fixture's emulator was torn down (for test_frames' summary).
FRAME_REPORTS: dict[Path, frames.Report] = {}


def emulator_bin() -> Path:
    env = os.environ.get("JUJU_EMULATOR_BIN")
    return Path(env) if env else REPO_ROOT / "target" / "debug" / "juju-emulator"


@dataclass
class Emulator:
    """One running juju-emulator process and what its connection.json says."""

    state_dir: Path
    frame_log: Path | None  # None: no --frame-log (JUJU_EMULATOR_FRAME_LOG may apply)
    seed: Path | None = None
    env: dict | None = None
    proc: subprocess.Popen | None = None
    info: dict = field(default_factory=dict)
    _stdout: Path | None = None
    _stderr: Path | None = None

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> "Emulator":
        binary = emulator_bin()
        if not binary.exists():
            pytest.fail(
                f"emulator binary {binary} not found: run `cargo build -p juju-emulator` "
                "or set JUJU_EMULATOR_BIN",
                pytrace=False,
            )
        conn_file = self.state_dir / "connection.json"
        previous = conn_file.read_text() if conn_file.exists() else None
        # stdout/stderr go next to (not into) the state dir
        n = len(list(self.state_dir.parent.glob("emulator-*.out")))
        self._stdout = self.state_dir.parent / f"emulator-{n}.out"
        self._stderr = self.state_dir.parent / f"emulator-{n}.err"
        cmd = [
            str(binary),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            str(self.state_dir),
        ]
        if self.frame_log is not None:
            cmd += ["--frame-log", str(self.frame_log)]
        if self.seed:
            cmd += ["--seed", str(self.seed)]
        with open(self._stdout, "wb") as out, open(self._stderr, "wb") as err:
            self.proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=None if self.env is None else os.environ | self.env,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"juju-emulator exited with {self.proc.returncode} before listening; "
                    f"stderr: {self._tail(self._stderr)}",
                    pytrace=False,
                )
            printed = re.search(
                r"juju-emulator listening on (\S+)", self._stdout.read_text(errors="replace")
            )
            text = None
            with contextlib.suppress(OSError):
                text = conn_file.read_text()
            if text:
                try:
                    info = json.loads(text)
                except json.JSONDecodeError:
                    info = None  # written atomically, so this should not happen
                    pytest.fail("connection.json is not valid JSON (not written atomically?)")
                if info and (
                    previous is None
                    or text != previous
                    or (printed and printed.group(1) == info.get("endpoint"))
                ):
                    self.info = info
                    return self
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"juju-emulator did not write connection.json within {START_TIMEOUT}s; "
                    f"stderr: {self._tail(self._stderr)}",
                    pytrace=False,
                )
            time.sleep(0.05)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
                pytest.fail(f"juju-emulator ignored SIGTERM for {STOP_TIMEOUT}s")
        return proc.returncode

    def restart(self) -> "Emulator":
        self.stop()
        return self.start()

    @staticmethod
    def _tail(path: Path | None, n: int = 2000) -> str:
        if path is None or not path.exists():
            return ""
        return path.read_text(errors="replace")[-n:]

    # ---- connection info -----------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self.info["endpoint"]

    @property
    def cacert(self) -> str:
        return self.info["ca-cert"]

    @property
    def controller_uuid(self) -> str:
        return self.info["controller-uuid"]

    def password(self, user: str = "admin") -> str:
        for u in self.info["users"]:
            if u["username"] == user:
                return u["password"]
        raise KeyError(user)

    def user_with_access(self, access: str) -> str:
        for u in self.info["users"]:
            if u["access"] == access:
                return u["username"]
        raise KeyError(access)

    @property
    def model(self) -> dict:
        for m in self.info["models"]:
            if m["name"] == "dev":
                return m
        return self.info["models"][0]

    @property
    def model_uuid(self) -> str:
        return self.model["uuid"]

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cadata=self.cacert)
        ctx.check_hostname = False  # like python-libjuju with an explicit CA
        return ctx

    # ---- control channel -------------------------------------------------------------

    async def control(self, request: str, params: dict | None = None) -> Any:
        """One call on wss://ENDPOINT/emulator/control; raises ControlError on error."""
        url = f"wss://{self.endpoint}/emulator/control"
        async with asyncio.timeout(CALL_TIMEOUT):
            async with websockets.connect(url, ssl=self.ssl_context()) as ws:
                await ws.send(
                    json.dumps(
                        {
                            "request-id": 1,
                            "type": "Emulator",
                            "version": 1,
                            "request": request,
                            "params": params or {},
                        }
                    )
                )
                reply = json.loads(await ws.recv())
        if "error" in reply:
            raise ControlError(reply["error"], reply.get("error-code"))
        assert reply.get("request-id") == 1, reply
        return reply.get("response")


def _validate_log(emu: Emulator) -> None:
    """Validate a stopped emulator's frame log; fail the teardown on problems."""
    if not emu.frame_log.exists():
        pytest.fail(f"frame log {emu.frame_log} was never written", pytrace=False)
    rep = frames.validate_file(emu.frame_log, frames.SchemaSet())
    FRAME_REPORTS[emu.frame_log] = rep
    if rep.frames == 0:
        pytest.fail(f"frame log {emu.frame_log} holds no frames", pytrace=False)
    if rep.problems:
        shown = "\n".join(rep.problems[:30])
        pytest.fail(
            f"frame log {emu.frame_log.name}: {rep.summary()}\n{shown}", pytrace=False
        )


@pytest.fixture(scope="session")
def frame_log_dir():
    d = Path(tempfile.mkdtemp(prefix="juju-emulator-frames-"))
    yield d
    if os.environ.get("KEEP_FRAME_LOGS"):
        print(f"\nframe logs kept in {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def running_emulator(frame_log_dir: Path, seed: Path | None = None, env: dict | None = None):
    """Start an emulator; on exit stop it and validate its frame log (fails on problems)."""
    work = Path(tempfile.mkdtemp(prefix="juju-emulator-"))
    state = work / "state"
    state.mkdir()
    log = frame_log_dir / f"{uuidlib.uuid4().hex}.jsonl"
    FRAME_LOGS.append(log)
    emu = Emulator(state_dir=state, frame_log=log, seed=seed, env=env)
    try:
        emu.start()
        yield emu
    finally:
        rc = emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    if rc not in (None, 0, -signal.SIGTERM):
        pytest.fail(f"juju-emulator exited with {rc} on SIGTERM", pytrace=False)
    _validate_log(emu)


@pytest.fixture(scope="module")
def emulator(frame_log_dir):
    """An emulator shared by the tests of one module (tests use unique names)."""
    with running_emulator(frame_log_dir) as emu:
        yield emu


@pytest.fixture
def fresh_emulator(frame_log_dir):
    """An emulator of the test's own, for tests that need exact global state."""
    with running_emulator(frame_log_dir) as emu:
        yield emu


def pytest_collection_modifyitems(session, config, items):
    """Run test_frames.py last, so it sees the logs of every other module's emulator."""
    items.sort(key=lambda it: 1 if it.nodeid.split("::")[0].endswith("test_frames.py") else 0)
