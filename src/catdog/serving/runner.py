"""Runner processes: where uploads are decoded and run through the model, away from the event loop.

Each runner is a child process (`CHILD_PROGRAM`) that holds its own ONNX Runtime sessions and
answers one message at a time over a private pair of pipes: load a model, run a batch of uploads,
drop a model. The event loop's process keeps only HTTP: in one process, decoding and the model
contended with the loop for the GIL, and on 2 cores that cost a fifth of the throughput (README,
Benchmarks). A runner that dies is started again with the models it held.

This is the service's end; the child's (the messages and its loop) is catdog.serving.child,
which imports nothing of the web service. Messages are pickled over pipes that only this process
and its own child hold.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import structlog

from catdog.errors import ModelError
from catdog.serving.protocol import Drop, Load, Message, Ping, Ran, Run, RunHeader

log = structlog.get_logger("catdog.serving")

# How long closing a runner waits for it to exit before killing it (a hung child is killed).
EXIT_GRACE_S = 1.0
# How long loading a model into a runner may take before the runner counts as hung.
LOAD_TIMEOUT_S = 120.0
# An idle runner is asked how it is this often; one that does not answer within PING_TIMEOUT_S
# is hung (SIGSTOP, a deadlock) and is replaced before a request finds out.
PING_INTERVAL_S = 1.0
PING_TIMEOUT_S = 2.0
# How long the supervisor waits before trying again to start a runner that could not start.
RESTART_BACKOFF_S = 0.5
# Runners run at this nice value: under overload the event loop's process must win a core at
# once to accept connections and answer the 503s. CFS gives nice 10 about a tenth of the weight of
# nice 0, and the runners still get every core whenever the loop idles.
BACKGROUND_NICE = 10
# The child's program. Its priority is lowered first, before any import can start a thread, so
# that every thread it will have (ONNX Runtime's, NumPy's) inherits it.
CHILD_PROGRAM = (
    f"import os; os.nice({BACKGROUND_NICE}); from catdog.serving.child import main; main()"
)


class RunnerStoppedError(ModelError):
    """The runner process ended while it held a batch (it is started again at once).

    `suspect`: the batch may have caused it: the child crashed by itself (SIGSEGV, SIGABRT, an
    exit) or hung, rather than being killed from outside (SIGKILL: an operator, a test).
    """

    reason = "runner_stopped"
    suspect = False


class RunnerHungError(RunnerStoppedError):
    """The runner did not answer within its deadline; it was killed and is started again."""

    reason = "runner_hung"


class _ChildGoneError(Exception):
    """The child died (or was killed for missing its deadline) during an exchange."""

    def __init__(self, hung: bool) -> None:
        super().__init__("hung" if hung else "exited")
        self.hung = hung


class RunnerProcess:
    """The service's end of one runner: starts the child, talks to it, and supervises it.

    A supervisor thread watches the child's exit and starts a new one at once with the models
    the old one held, and pings it while it is idle, so a runner killed or hung between
    requests is replaced before a request finds it. Every call has a deadline: a child that
    misses it is killed, replaced, and the call raises RunnerHungError. Thread-safe: one call
    at a time (a runner thread's batches, a reload's loads and the pings take turns).
    """

    def __init__(self, name: str, *, call_timeout_s: float = 5.0) -> None:
        self.name = name
        self.call_timeout_s = call_timeout_s
        # Called with "exited" or "hung" after each restart (the batcher counts them).
        self.on_restart: Callable[[str], None] | None = None
        self._lock = threading.RLock()
        self._models: dict[str, Load] = {}  # what a restarted child must load again
        self._process: subprocess.Popen[bytes] | None = None
        self._send: Connection | None = None
        self._receive: Connection | None = None
        self._closed = False
        self._supervisor: threading.Thread | None = None
        self._deadline: float | None = None  # when the call in progress must have answered
        self._hung = threading.Event()  # set when the child was killed for missing it

    @property
    def running(self) -> bool:
        """True while a child is up and its pipes are open."""
        return self._send is not None

    @property
    def pid(self) -> int | None:
        """The current child's process id (tests kill it)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the child process and its supervisor, unless they run already (`catdog serve`
        starts its runners early); it is ready for messages at once (they wait in the pipe)."""
        with self._lock:
            self._closed = False
            if not self.running:
                self._spawn()
            if self._supervisor is None:
                self._supervisor = threading.Thread(
                    target=self._supervise, name=f"{self.name}-supervisor", daemon=True
                )
                self._supervisor.start()

    def load(self, message: Load) -> None:
        """Load a model into the child, or raise the ModelError that says why it cannot."""
        with self._lock:
            self._call(message, LOAD_TIMEOUT_S)
            self._models[message.key] = message

    def drop(self, key: str) -> None:
        """Forget a model in the child."""
        with self._lock:
            self._models.pop(key, None)
            self._call(Drop(key), self.call_timeout_s)

    def run(self, message: Run) -> Ran:
        """Decode and run one batch in the child, within `call_timeout_s`."""
        reply = self._call(message, self.call_timeout_s)
        if not isinstance(reply, Ran):
            raise ModelError(f"runner {self.name} answered {type(reply).__name__} to a batch")
        return reply

    def close(self) -> None:
        """Stop supervising, close the pipes (the child exits when it reads their end) and reap
        the child. Never waits on a hung child: one that holds a call is killed first."""
        self._closed = True
        if not self._lock.acquire(timeout=0.2):  # a call is in progress: end it now
            self._kill()
            self._lock.acquire()
        try:
            self._close()
        finally:
            self._lock.release()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(PING_TIMEOUT_S + RESTART_BACKOFF_S)
        self._supervisor = None

    def _spawn(self) -> None:
        down_read, down_write = os.pipe()
        up_read, up_write = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", CHILD_PROGRAM, str(down_read), str(up_write)],
                pass_fds=(down_read, up_write),
                stdin=subprocess.DEVNULL,
            )
        except OSError:
            os.close(down_write)
            os.close(up_read)
            raise
        finally:
            os.close(down_read)
            os.close(up_write)
        self._send = Connection(down_write, readable=False)
        self._receive = Connection(up_read, writable=False)

    def _call(self, message: Message, timeout_s: float) -> Any:
        with self._lock:
            if self._send is None or self._receive is None:
                raise RunnerStoppedError(f"runner {self.name} is not running")
            try:
                reply = self._exchange(message, timeout_s)
            except _ChildGoneError as gone:
                code = self._close()
                cause = "hung" if gone.hung else "exited"
                restarted = self._restart(cause)
                what = f"did not answer within {timeout_s:g} s" if gone.hung else "stopped"
                error = RunnerHungError if gone.hung else RunnerStoppedError
                again = "was restarted" if restarted else "cannot be restarted yet"
                stopped = error(f"runner {self.name} {what} (exit status {code}) and {again}")
                stopped.suspect = gone.hung or code != -signal.SIGKILL
                raise stopped from None
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def _exchange(self, message: Message, timeout_s: float) -> Any:
        """Send one message and read its reply; a child that has not answered by `timeout_s`
        is killed. The reply is awaited with a timeout; a send blocked on a full pipe (a large
        batch to a stopped child) is ended by the supervisor, which kills past `_deadline`."""
        send, receive, process = self._send, self._receive, self._process
        if send is None or receive is None or process is None:
            raise _ChildGoneError(hung=False)
        deadline = time.monotonic() + timeout_s
        self._hung.clear()
        self._deadline = deadline
        try:
            if isinstance(message, Run):
                uploads = list(message.uploads)
                send.send(RunHeader(message.key, len(uploads), message.max_pixels))
                for upload in uploads:
                    send.send_bytes(upload)
            else:
                send.send(message)
            if not receive.poll(max(0.0, deadline - time.monotonic())):
                self._hung.set()
                self._kill()
                raise _ChildGoneError(hung=True)
            return receive.recv()
        except (EOFError, OSError):
            raise _ChildGoneError(self._hung.is_set()) from None
        finally:
            self._deadline = None

    def _kill(self) -> None:
        process = self._process
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()

    def _close(self) -> int | None:
        for end in (self._send, self._receive):
            if end is not None:
                end.close()
        self._send = self._receive = None
        process, self._process = self._process, None
        if process is None:
            return None
        try:
            return process.wait(EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def _restart(self, cause: str) -> bool:
        """A new child with every model the old one held (one that fails to load stays out).
        False if none could start (the supervisor tries again)."""
        if self._closed:
            return False
        try:
            self._spawn()
        except OSError as exc:
            log.error("runner_start_failed", runner=self.name, detail=str(exc))
            return False
        for key, message in list(self._models.items()):
            try:
                reply = self._exchange(message, LOAD_TIMEOUT_S)
            except _ChildGoneError:
                self._close()
                return False
            if isinstance(reply, BaseException):
                self._models.pop(key)
        log.warning("runner_restarted", runner=self.name, cause=cause, pid=self.pid)
        if self.on_restart is not None:
            self.on_restart(cause)
        return True

    def _supervise(self) -> None:
        """Restart a child that exited, kill one past its deadline, ping an idle one, and
        retry a start that failed."""
        while not self._closed:
            process = self._process
            if process is None:  # the last start failed
                time.sleep(RESTART_BACKOFF_S)
                with self._lock:
                    if self._process is None and not self._closed:
                        self._restart("exited")
                continue
            deadline = self._deadline
            wait = PING_INTERVAL_S
            if deadline is not None:
                wait = min(wait, max(0.01, deadline - time.monotonic()))
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                deadline = self._deadline
                if deadline is None:
                    self._ping_if_idle()
                elif time.monotonic() >= deadline and self._process is process:
                    self._hung.set()
                    self._kill()
                continue
            with self._lock:
                if self._process is process and not self._closed:
                    code = self._close()
                    log.warning("runner_exited", runner=self.name, exit_status=code)
                    self._restart("exited")

    def _ping_if_idle(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # busy: the call's own deadline watches it
        try:
            if self.running and not self._closed:
                with contextlib.suppress(RunnerStoppedError):
                    self._call(Ping(), PING_TIMEOUT_S)
        finally:
            self._lock.release()


def runner_processes(count: int, *, call_timeout_s: float = 5.0) -> list[RunnerProcess]:
    """One worker's runners, not started yet."""
    return [
        RunnerProcess(f"catdog-runner-{i}", call_timeout_s=call_timeout_s) for i in range(count)
    ]
