"""LocalHost: the machine the wizard runs on."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from wizard.host.base import CommandResult, Host

# nvml.py run as a script: importing the wizard package first would add ~50 ms to the doctor's
# slowest probe.
NVML_SCRIPT = str(Path(__file__).with_name("nvml.py"))
NVML_TIMEOUT = 20.0


def users_path(path: str | None = None) -> str:
    """PATH (this process's by default) less the bin folder of the virtual environment the
    wizard itself runs in, when that venv is the wizard's own: with that folder on PATH
    (activated, or added to reach `wizard`), its python3 and pip would pass for the user's,
    and fixes would install into it."""
    path = os.environ.get("PATH", os.defpath) if path is None else path
    own = _own_venv_bin()
    if own is None:
        return path
    return os.pathsep.join(p for p in path.split(os.pathsep) if os.path.realpath(p) != own)


def _own_venv_bin() -> str | None:
    """The bin folder of the wizard's own venv; None where the wizard shares the user's
    Python: no venv, or a venv that holds PyTorch (a training environment, which people
    install the wizard into too: its python3 is the one they train with)."""
    if sys.prefix == sys.base_prefix:
        return None
    if os.path.isdir(os.path.join(sysconfig.get_paths()["purelib"], "torch")):
        return None
    return os.path.realpath(os.path.join(sys.prefix, "bin"))


class LocalHost(Host):
    def __init__(self, *, start_nvml: bool = False) -> None:
        """`start_nvml` starts NVML's query (the doctor's slowest probe, ~0.3 s) at once, so
        it runs while the checks are still being imported."""
        super().__init__(socket.gethostname())
        self._nvml_child = self._start([sys.executable, NVML_SCRIPT]) if start_nvml else None

    def _command(self, argv: list[str], timeout: float, name: str) -> dict[str, Any]:
        return self._run(argv, timeout).to_record()

    def _run(self, argv: list[str], timeout: float) -> CommandResult:
        return self._finish(self._start(argv), timeout)

    def _start(self, argv: list[str]) -> subprocess.Popen[bytes] | CommandResult:
        """The command started, or why it could not be."""
        path = users_path()
        program = shutil.which(argv[0], path=path)
        if program is None:
            return CommandResult(tuple(argv), None, error=f"{argv[0]}: command not found")
        # C locale: tools print the messages the parsers expect, whatever the user's language.
        env = {**os.environ, "PATH": path, "LC_ALL": "C", "LANG": "C"}
        try:
            return subprocess.Popen(
                [program, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return CommandResult(tuple(argv), None, error=f"{argv[0]}: {exc.strerror or exc}")

    def _finish(
        self, proc: subprocess.Popen[bytes] | CommandResult, timeout: float
    ) -> CommandResult:
        if isinstance(proc, CommandResult):
            return proc
        argv = tuple(str(a) for a in proc.args)  # type: ignore[union-attr]
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            return CommandResult(
                argv,
                None,
                _decode(out),
                _decode(err),
                error=f"{Path(argv[0]).name} did not answer within {timeout:g} s",
            )
        return CommandResult(argv, proc.returncode, _decode(out), _decode(err))

    def spawn(
        self, script: str, *, cwd: str | None, env: dict[str, str], own_session: bool = True
    ) -> subprocess.Popen[bytes]:
        """Start a step's shell script, stdout and stderr merged. In its own session by
        default, so cancelling it ends every process it started; `own_session=False` keeps
        the terminal, for sudo to ask for a password."""
        return subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=own_session,
        )

    def _read_text(self, path: str, max_bytes: int) -> str | None:
        try:
            with open(path, "rb") as f:
                return _decode(f.read(max_bytes))
        except OSError:
            return None

    def _path_kind(self, path: str) -> str | None:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return None
        if stat.S_ISDIR(mode):
            return "dir"
        return "file" if stat.S_ISREG(mode) else "other"

    def _glob(self, pattern: str) -> list[str]:
        return glob.glob(pattern)

    def _realpath(self, path: str) -> str:
        return os.path.realpath(path)

    def _getenv(self, name: str) -> str | None:
        return os.environ.get(name)

    def _env_names(self, prefix: str) -> list[str]:
        return [name for name in os.environ if name.startswith(prefix)]

    def _which(self, program: str) -> str | None:
        return shutil.which(program, path=users_path())

    def _statvfs(self, path: str) -> dict[str, int] | None:
        try:
            st = os.statvfs(path)
        except OSError:
            return None
        return {"total": st.f_blocks * st.f_frsize, "free": st.f_bavail * st.f_frsize}

    def _nvml(self) -> dict[str, Any]:
        # In a child process: importing pynvml runs ~0.1 s of Python that would hold this
        # process's GIL while every other check is parsing its own probes.
        child, self._nvml_child = self._nvml_child, None
        if child is None:
            child = self._start([sys.executable, NVML_SCRIPT])
        result = self._finish(child, NVML_TIMEOUT)
        if result.error or result.returncode != 0:
            why = result.error or (result.stderr.strip().splitlines() or ["no output"])[-1]
            return {"error": f"the NVML query failed: {why}"}
        try:
            return json.loads(result.stdout)
        except ValueError:
            return {"error": "the NVML query printed no answer"}


def capture(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """A short command here, its output kept (bytes that are not UTF-8 replaced: a remote
    host may print anything), no stdin: exit 124 when it outlasts `timeout`, 127 when it
    cannot start (as a shell would say). It runs in a session of its own, so a timeout ends
    all it started (ssh's ProxyCommand, a login's children), not only its first process,
    and the limit holds."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return subprocess.CompletedProcess(argv, 127, "", str(exc))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        with contextlib.suppress(subprocess.TimeoutExpired):  # a daemon may hold the pipes
            proc.communicate(timeout=2)
        proc.wait()
        return subprocess.CompletedProcess(argv, 124, "", f"no answer within {timeout:g} s")
    except BaseException:  # Ctrl-C: end what it started, then stop
        _kill_group(proc)
        proc.wait()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, _decode(out), _decode(err))


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
