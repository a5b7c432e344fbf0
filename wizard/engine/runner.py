"""Run one step's script: stream its lines, keep its log, enforce its timeout, cancel it.

Output is read in chunks and split into lines here, written to the log file as raw bytes,
and handed to listeners a chunk's lines at a time (so a flood of output costs a few calls,
not one per line); only the last lines are kept in memory.
"""

from __future__ import annotations

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

from wizard.host import LocalHost
from wizard.paths import private_file

TAIL_LINES = 40
GRACE_S = 5.0


@dataclass
class Outcome:
    exit_code: int | None
    duration_s: float
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None
    tail: list[str] = field(default_factory=list)

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
        with every sibling running a part of it."""
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
        self._cancel.clear()
        started = time.monotonic()
        tail: deque[str] = deque(maxlen=TAIL_LINES)

        def emit(lines: list[str]) -> None:
            tail.extend(lines)
            on_lines(lines)

        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab", opener=private_file) as log:
            try:
                proc = self.host.spawn(script, cwd=cwd, env=env, own_session=own_session)
            except OSError as exc:
                message = f"could not start the step: {exc.strerror or exc}"
                log.write(message.encode() + b"\n")
                return Outcome(None, 0.0, error=message, tail=[message])
            self.pgid = proc.pid if own_session else None
            timed_out = cancelled = False
            try:
                timed_out, cancelled = self._pump(proc, log, emit, started, timeout)
            except KeyboardInterrupt:
                cancelled = True
            finally:
                if timed_out or cancelled:
                    _stop(proc, own_session)
                proc.wait()
            code = proc.returncode
            why = (
                f"timed out after {timeout:g} s"
                if timed_out
                else "cancelled"
                if cancelled
                else _signal_words(code)
            )
            if why:
                log.write(f"[wizard] {why}\n".encode())
                if not (timed_out or cancelled):
                    emit([f"[wizard] {why}"])
        return Outcome(code, time.monotonic() - started, timed_out, cancelled, tail=list(tail))

    def _pump(
        self,
        proc: subprocess.Popen[bytes],
        log,
        emit,
        started: float,  # type: ignore[no-untyped-def]
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
            log.write(chunk)
            end = chunk.rfind(b"\n")
            if end < 0:
                partial += chunk
                continue
            partial += chunk[:end]
            text = partial.decode("utf-8", "replace").replace("\r", "")
            partial = bytearray(chunk[end + 1 :])
            emit(text.split("\n"))


_SIGNAL_MEANING = {
    signal.SIGSEGV: "a segmentation fault",
    signal.SIGKILL: "killed, often by the kernel when memory ran out",
    signal.SIGABRT: "aborted: an assertion or an uncaught C++ exception",
    signal.SIGBUS: "a bus error",
}


def _signal_words(code: int | None) -> str | None:
    """What an exit status says when a signal ended the step's last command: the shell
    reports 128+N for its children (a bare process, -N)."""
    if code is None or not (code < 0 or 128 < code < 128 + 65):
        return None
    number = -code if code < 0 else code - 128
    try:
        sig = signal.Signals(number)
    except ValueError:
        return None
    meaning = _SIGNAL_MEANING.get(sig, "")
    return f"killed by signal {number} ({sig.name}{': ' + meaning if meaning else ''})"


def _stop(proc: subprocess.Popen[bytes], own_session: bool) -> None:
    if own_session:
        _stop_group(proc)
        return
    # In the terminal's group, Ctrl-C already reached it; end it if it is still there.
    proc.terminate()
    try:
        proc.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the step's whole process group, then SIGKILL what is left after a grace."""
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        if wait is None:
            return
        try:
            proc.wait(timeout=wait)
            # The leader is gone; make sure nothing else of its group survives.
            os.killpg(proc.pid, signal.SIGKILL)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            pass
        return
