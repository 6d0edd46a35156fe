"""``security-server run`` as a user runs it: a subprocess that starts its signer, workers,
OCSP download service and management API, says where it listens, and stops cleanly.

The anchor names a central server that is not running: the server still starts (it keeps
trying to download), and its proxies refuse exchanges with ``global_conf_outdated``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from crossroad.identifiers import ClientId
from crossroad.securityserver.settings import SecurityServerSettings
from crossroad.securityserver.state import initialize

from .conftest import PIN

pytestmark = pytest.mark.integration

COMMAND = [sys.executable, "-m", "crossroad.securityserver"]


class Running:
    def __init__(self, state: Path) -> None:
        self.proc = subprocess.Popen(
            [*COMMAND, "run", str(state)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, prefix: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no {prefix!r} within {timeout} s:\n{''.join(self.output)}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            with_group = os.getpgid(self.proc.pid)
            os.killpg(with_group, signal.SIGKILL)
            self.proc.wait(10)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return "\nState:\tZ" not in fh.read()
    except FileNotFoundError:
        return False


def wait_gone(pids: list[int], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "children outlived their supervisor"


def connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def http(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "text/xml")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture
def state(tmp_path: Path, anchor_file: Path, address: str) -> Path:
    settings = SecurityServerSettings(
        tmp_path / "ss",
        client_host=address,
        server_host=address,
        ocsp_host=address,
        admin_host=address,
        conf_first_timeout=3.0,
    )
    initialize(
        tmp_path / "ss",
        owner=ClientId("DEV", "COM", "1111"),
        server_code="SS1",
        anchor=anchor_file.read_bytes(),
        pin=PIN,
        settings=settings,
        autologin=True,
    )
    return tmp_path / "ss"


@pytest.fixture
def running(state: Path) -> Iterator[Running]:
    server = Running(state)
    try:
        yield server
    finally:
        server.kill()


def test_run_starts_everything_and_stops_cleanly(state: Path, running: Running) -> None:
    settings = SecurityServerSettings.load(state)
    host = settings.client_host
    ready = running.wait_for("ready:")
    assert "SERVER:DEV/COM/1111/SS1" in ready
    info = json.loads(settings.run_file.read_text())
    assert info["pid"] == running.proc.pid
    assert len(info["worker_pids"]) == 2
    assert info["globalconf_ok"] is False  # the central server is not running
    children = [info["signer_pid"], *info["worker_pids"]]
    assert all(alive(p) for p in children)
    assert settings.socket_path.exists()

    # The client proxy answers (no configuration yet: the exchange is refused with a code).
    _status, body = http(f"http://{host}:8080/", "POST", b"<x/>")
    assert b"<faultcode>server.clientproxy.global_conf_outdated</faultcode>" in body, body
    # The signed-document download of the message log, not the SOAP pipeline.
    status, body = http(f"http://{host}:8080/asic?queryId=q")
    assert status == 400, body
    assert b"xRoadInstance" in body
    status, body = http(f"http://{host}:8080/verificationconf")
    assert status == 500, body
    assert b"<faultcode>" not in body
    assert (state / "messagelog.db").is_file()
    # The OCSP download service's health check, and the management API (asks for a key).
    assert http(f"http://{host}:5577/", "HEAD")[0] == 200
    assert http(f"http://{host}:4000/api/v1/clients")[0] == 401
    # The HTTPS listener is up; the server proxy port waits for an authentication key.
    assert connects(host, 8443)
    assert not connects(host, 5500)

    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(30) == 0, "".join(running.output)
    wait_gone(children)
    assert not settings.run_file.exists()
    assert not settings.socket_path.exists()
    for port in (8080, 8443, 5577, 4000):
        assert not connects(host, port)
    assert "stopped" in "".join(running.output)


def test_sigint_stops_it_too(running: Running) -> None:
    running.wait_for("ready:")
    running.proc.send_signal(signal.SIGINT)
    assert running.proc.wait(30) == 0


def test_children_die_with_a_killed_supervisor(state: Path, running: Running) -> None:
    running.wait_for("ready:")
    info = json.loads(SecurityServerSettings.load(state).run_file.read_text())
    os.kill(running.proc.pid, signal.SIGKILL)  # the supervisor alone: no chance to clean up
    running.proc.wait(10)
    wait_gone([info["signer_pid"], *info["worker_pids"]])


def test_a_crashed_worker_is_restarted(state: Path, running: Running) -> None:
    running.wait_for("ready:")
    settings = SecurityServerSettings.load(state)
    first = json.loads(settings.run_file.read_text())["worker_pids"][0]
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = json.loads(settings.run_file.read_text())["worker_pids"]
        if first not in pids and len(pids) == 2 and all(alive(p) for p in pids):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the worker was not restarted:\n" + "".join(running.output))
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(30) == 0


def test_a_taken_port_fails_the_start_with_a_message(state: Path) -> None:
    settings = SecurityServerSettings.load(state)
    with socket.create_server((settings.client_host, settings.client_http_port)):
        done = subprocess.run(
            [*COMMAND, "run", str(state)], capture_output=True, text=True, timeout=90, check=False
        )
    assert done.returncode == 1
    assert "cannot listen" in done.stderr
    assert "error: internal_error: worker" in done.stderr
    assert not settings.run_file.exists()


def test_status_command(state: Path, running: Running) -> None:
    idle = subprocess.run([*COMMAND, "status", str(state)], capture_output=True, text=True)
    running.wait_for("ready:")
    busy = subprocess.run([*COMMAND, "status", str(state)], capture_output=True, text=True)
    assert busy.returncode == 0, busy.stderr
    assert json.loads(busy.stdout)["server_id"] == "SERVER:DEV/COM/1111/SS1"
    assert idle.returncode == 1 or json.loads(idle.stdout)["pid"] == running.proc.pid


def test_a_second_supervisor_on_the_same_state_is_refused(state: Path, running: Running) -> None:
    running.wait_for("ready:")
    settings = SecurityServerSettings.load(state)
    done = subprocess.run(
        [*COMMAND, "run", str(state)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "is already running" in done.stderr
    # The first one is untouched: its signer socket and run.json are still there.
    assert settings.socket_path.exists()
    assert json.loads(settings.run_file.read_text())["pid"] == running.proc.pid
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(30) == 0
