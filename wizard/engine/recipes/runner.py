"""Run one step's script: stream its lines, keep its log, enforce its timeout, cancel it.

Output is read in chunks and split into lines here, written to the log file as raw bytes,
and handed to listeners a chunk's lines at a time (so a flood of output costs a few calls,
not one per line); only the last lines are kept in memory.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import select
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import psutil

from wizard.host import LocalHost
from wizard.paths import private_file

TAIL_LINES = 40
GRACE_S = 5.0
# In every step's environment, so its processes are found even when they leave its session.
TOKEN = "WIZARD_STEP_TOKEN"
_tokens = itertools.count(1)


@dataclass
class Outcome:
    exit_code: int | None
    duration_s: float
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None
    tail: list[str] = field(default_factory=list)
    stopped: str = ""  # when the wizard ended it: a second interrupt, what survived

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.cancelled or self.error)


class StepRunner:
    def __init__(self, host: LocalHost) -> None:
        self.host = host
        self._cancel = threading.Event()
        self._siblings: list[StepRunner] = []
        self.pgid: int | None = None

    def cancel(self) -> None:
        """Ask the running step to stop (from another thread, e.g. the app's cancel key),
        with every sibling running a part of it. A cancel is kept: every later `run` of
        this runner returns at once as cancelled, so one pressed between steps is not lost."""
        self._cancel.set()
        for sibling in self._siblings:
            sibling.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def sibling(self) -> StepRunner:
        """Another runner for a part of this step that runs beside it (one host of several):
        cancelling this one cancels it too."""
        runner = StepRunner(self.host)
        if self.cancelled:
            runner.cancel()
        self._siblings.append(runner)
        return runner

    def forget_siblings(self) -> None:
        self._siblings.clear()

    def run(
        self,
        script: str,
        *,
        cwd: str | None,
        env: dict[str, str],
        timeout: float | None,
        log_path: Path,
        on_lines: Callable[[list[str]], None],
        own_session: bool = True,
    ) -> Outcome:
        """Run the script to its end, its timeout or a cancel. When its output can no longer
        be kept (the log's disk is full) or shown (`on_lines` fails: a closed pipe, a
        terminal gone), the step is stopped rather than left blocked on a pipe nobody
        reads, and the Outcome's error says why."""
        if self.cancelled:
            return Outcome(None, 0.0, cancelled=True)
        started = time.monotonic()
        tail: deque[str] = deque(maxlen=TAIL_LINES)

        def emit(lines: list[str]) -> None:
            tail.extend(lines)
            try:
                on_lines(lines)
            except OSError as exc:
                raise OutputLost(_unshown(exc)) from exc

        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered: a full disk shows at the write. The `with` below closes it.
            log = open(log_path, "ab", buffering=0, opener=private_file)  # noqa: SIM115
        except OSError as exc:
            message = f"cannot open its log {log_path} ({exc.strerror or exc})"
            return Outcome(None, 0.0, error=message, tail=[message])
        with log:
            env = {**env, TOKEN: f"{os.getpid()}-{next(_tokens)}"}  # to find what it starts
            try:
                proc = self.host.spawn(script, cwd=cwd, env=env, own_session=own_session)
            except OSError as exc:
                message = f"could not start the step: {exc.strerror or exc}"
                _note(log, message)
                return Outcome(None, 0.0, error=message, tail=[message])
            self.pgid = proc.pid if own_session else None
            timed_out = cancelled = False
            lost = None
            stopped = ""
            try:
                timed_out, cancelled = self._pump(proc, log, emit, started, timeout)
            except KeyboardInterrupt:
                cancelled = True
            except OutputLost as exc:
                lost = f"stopped: {exc}"
            except BaseException:  # a listener's bug: the step must not run on unread
                _stop(proc, own_session, env[TOKEN])
                raise
            finally:
                if timed_out or cancelled or lost:
                    stopped = _stop(proc, own_session, env[TOKEN])
                proc.wait()
            code = proc.returncode
            why = (
                f"timed out after {timeout:g} s"
                if timed_out
                else "cancelled"
                if cancelled
                else lost or signal_words(code)
            )
            if stopped:
                why = f"{why}; {stopped}"
            if why:
                _note(log, f"[wizard] {why}")
                if not (timed_out or cancelled or lost):
                    with contextlib.suppress(OutputLost):  # the next message will say it
                        emit([f"[wizard] {why}"])
        duration = time.monotonic() - started
        return Outcome(
            code, duration, timed_out, cancelled, error=lost, tail=list(tail), stopped=stopped
        )

    def _pump(
        self,
        proc: subprocess.Popen[bytes],
        log: BinaryIO,
        emit: Callable[[list[str]], None],
        started: float,
        timeout: float | None,
    ) -> tuple[bool, bool]:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        partial = bytearray()  # a line not ended yet: grown in place, never copied whole
        while True:
            if self._cancel.is_set():
                return False, True
            if timeout is not None and time.monotonic() - started > timeout:
                return True, False
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                if partial:
                    emit([partial.decode("utf-8", "replace")])
                return False, False
            try:
                _write_all(log, chunk)
            except OSError as exc:
                raise OutputLost(f"its log {log.name} cannot be written ({exc.strerror})") from exc
            end = chunk.rfind(b"\n")
            if end < 0:
                partial += chunk
                continue
            partial += chunk[:end]
            text = partial.decode("utf-8", "replace").replace("\r", "")
            partial = bytearray(chunk[end + 1 :])
            emit(text.split("\n"))


class OutputLost(Exception):
    """A step's output can no longer be kept or shown; the message says which and why."""


def _unshown(exc: OSError) -> str:
    if exc.errno == errno.EPIPE:
        return "the wizard's output was closed (the command reading it, as `| head`, ended)"
    if exc.errno == errno.EIO:
        return "the wizard's terminal is gone"
    return f"its output cannot be shown ({exc.strerror or exc})"


def _write_all(log: BinaryIO, data: bytes) -> None:
    """An unbuffered write can be short (the disk filled up midway): write the rest, so the
    next write reports the error."""
    view = memoryview(data)
    while view:
        view = view[log.write(view) or 0 :]


def _note(log: BinaryIO, text: str) -> None:
    """The wizard's own line in a step's log, when the log can still take it."""
    with contextlib.suppress(OSError):
        _write_all(log, text.encode() + b"\n")


_SIGNAL_MEANING = {
    signal.SIGSEGV: "a segmentation fault",
    signal.SIGKILL: "killed, often by the kernel when memory ran out",
    signal.SIGABRT: "aborted: an assertion or an uncaught C++ exception",
    signal.SIGBUS: "a bus error",
}


def signal_words(code: int | None) -> str | None:
    """What the wait status says when a signal ended the step (subprocess gives -N). An exit
    code of 128+N is an exit code: a shell reports its child's signal that way, but mpirun
    and others exit 132 or 139 by themselves, and only the wait status tells them apart."""
    if code is None or code >= 0:
        return None
    try:
        sig = signal.Signals(-code)
    except ValueError:
        return f"killed by signal {-code}"
    meaning = _SIGNAL_MEANING.get(sig, "")
    return f"killed by signal {-code} ({sig.name}{': ' + meaning if meaning else ''})"


def _stop(proc: subprocess.Popen[bytes], own_session: bool, token: str) -> str:
    """End the step. Returns "" when all it started was ended as asked, else what
    happened (a second interrupt, processes that survived)."""
    if own_session:
        return _stop_group(proc, token)
    # In the terminal's group, Ctrl-C already reached it; end it if it is still there.
    proc.terminate()
    try:
        proc.wait(timeout=GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
    return ""


def _stop_group(proc: subprocess.Popen[bytes], token: str) -> str:
    """SIGTERM the step's process group and all else it started (`_started_by`: those that
    left the group with setsid or a daemon's double fork), then SIGKILL all that is left
    after the grace, or at once at a second interrupt (a Ctrl-C pressed again)."""
    said = ""
    strays = _started_by(proc, token)
    _signal(proc, strays, signal.SIGTERM)
    try:
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline and (proc.poll() is None or _alive(strays)):
            time.sleep(0.05)
    except KeyboardInterrupt:
        said = "a second interrupt killed its processes (SIGKILL)"
    _signal(proc, strays + _started_by(proc, token), signal.SIGKILL)  # and any forked since
    proc.wait()
    time.sleep(0.05)  # SIGKILL is delivered at once; reaping by their parents may lag
    left = _alive(strays + _started_by(proc, token))
    if left:
        names = ", ".join(f"{p.pid} ({_name(p)})" for p in left)
        said = f"{said or 'its processes were ended'}, but these still run: {names}"
    return said


def _started_by(proc: subprocess.Popen[bytes], token: str) -> list[psutil.Process]:
    """What the step started: this machine's processes whose environment holds its token,
    and the leader's descendants now (one that cleared its environment is still a child)."""
    found = {}
    for process in psutil.process_iter():
        try:
            if process.environ().get(TOKEN) == token:
                found[process.pid] = process
        except psutil.Error:  # gone, a zombie, another user's
            continue
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(proc.pid).children(recursive=True):
            found.setdefault(child.pid, child)
    found.pop(proc.pid, None)  # the leader is signalled with its group and waited for
    return list(found.values())


def _signal(proc: subprocess.Popen[bytes], others: list[psutil.Process], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    for process in others:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:
        return "?"
