"""Servers under test as subprocesses: start on a free port, time `/ready`, read RSS, always stop.

Each server runs in its own process group, so that stopping it also stops any worker it forked,
and nothing is left behind when a benchmark fails halfway.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.serving.results import REPO_ROOT

HOST = "127.0.0.1"
PORT_PLACEHOLDER = "{port}"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server: its command (with `{port}`), environment and endpoints."""

    name: str
    command: Sequence[str]
    ready_path: str
    predict_path: str = "/predict"
    upload_field: str = "file"
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = REPO_ROOT


@dataclass
class RunningServer:
    """A started server: where it listens, how long it took to be ready, its process."""

    spec: ServerSpec
    port: int
    process: subprocess.Popen[bytes]
    ready_s: float
    log_path: Path

    @property
    def pid(self) -> int:
        """The server's process id (its process group too)."""
        return self.process.pid

    def alive(self) -> bool:
        """Still running (a crash under load shows up here)."""
        return self.process.poll() is None

    def rss_mb(self) -> float:
        """Resident memory of the server and every process it started, in MiB."""
        return sum(_status_kib(pid, "VmRSS:") for pid in _process_tree(self.pid)) / 1024.0

    def pss_mb(self) -> float:
        """Proportional memory of the same processes, in MiB: what they hold between them. The
        RSS sum counts every page the runners share with each other (the libraries' code) once
        per process; PSS splits it, so it is close to what a container's memory limit sees."""
        return sum(_smaps_kib(pid, "Pss:") for pid in _process_tree(self.pid)) / 1024.0

    def log_tail(self, lines: int = 20) -> str:
        """The end of what the server printed, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def get_status(port: int, path: str, timeout_s: float = 1.0) -> int:
    """Status of a GET on 127.0.0.1, 0 when nothing answers."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def _process_tree(root: int) -> list[int]:
    """`root` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _status_kib(pid: int, key: str) -> int:
    return _kib_field(Path(f"/proc/{pid}/status"), key)


def _smaps_kib(pid: int, key: str) -> int:
    return _kib_field(Path(f"/proc/{pid}/smaps_rollup"), key)


def _kib_field(path: Path, key: str) -> int:
    """A `key: N kB` line of a /proc file; 0 when the process is gone."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL if it does not stop in time."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT_S)
    except ProcessLookupError:
        process.wait(STOP_TIMEOUT_S)


@contextmanager
def running(
    spec: ServerSpec, *, ready_timeout_s: float = READY_TIMEOUT_S
) -> Iterator[RunningServer]:
    """Start `spec`, wait until its ready path answers 200, yield it, stop it whatever happens.

    `ready_s` runs from just before the process is created to the first 200: what an orchestrator
    waiting on a readiness probe sees.
    """
    port = free_port()
    command = [part.replace(PORT_PLACEHOLDER, str(port)) for part in spec.command]
    settings = {k: v.replace(PORT_PLACEHOLDER, str(port)) for k, v in spec.env.items()}
    env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
    fd, name = tempfile.mkstemp(prefix=f"bench-{spec.name}-", suffix=".log")
    log_path = Path(name)
    try:
        start = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=spec.cwd,
            env=env,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            server = RunningServer(spec, port, process, 0.0, log_path)
            _wait_ready(server, start, ready_timeout_s)
            server.ready_s = time.perf_counter() - start
            yield server
        finally:
            _stop(process)
    finally:
        os.close(fd)
        log_path.unlink(missing_ok=True)


def _wait_ready(server: RunningServer, start: float, timeout_s: float) -> None:
    """Poll the ready path every 10 ms; fail with the server's own words if it dies or hangs."""
    while get_status(server.port, server.spec.ready_path) != 200:
        if not server.alive():
            raise RuntimeError(f"{server.spec.name} exited at start:\n{server.log_tail()}")
        if time.perf_counter() - start > timeout_s:
            raise RuntimeError(
                f"{server.spec.name} not ready in {timeout_s} s:\n{server.log_tail()}"
            )
        time.sleep(0.01)


def python_command(*args: str) -> list[str]:
    """This interpreter running a module, so servers use the same venv as the benchmark."""
    return [sys.executable, *args]
