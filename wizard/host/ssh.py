"""SshHost: another machine, observed over the user's own ssh (through plumbum's SshMachine).

Every probe is a small POSIX command on the remote host; no agent is installed there. They
all go, one at a time, through one long-lived remote shell (plumbum's ShellSession), over one
SSH connection (OpenSSH's ControlMaster, which plumbum's own session shares). BatchMode keeps
ssh from asking for a password the wizard could not type: a host that needs one is reported
as unreachable, with ssh's words.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shlex
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import Any

from plumbum.commands.processes import (
    CommandNotFound,
    ProcessExecutionError,
    ProcessLineTimedOut,
    ProcessTimedOut,
)
from plumbum.machines.session import ShellSessionError
from plumbum.machines.ssh_machine import SshMachine

from wizard.host.base import CommandResult, Host
from wizard.host.local import capture

# plumbum logs a login that timed out with its process object's repr; the wizard says why
# itself (Unreachable), so that log goes nowhere.
logging.getLogger("plumbum.shell").addHandler(logging.NullHandler())
logging.getLogger("plumbum.shell").propagate = False

CONNECT_TIMEOUT_S = 5  # ssh's own: the TCP connection
LOGIN_TIMEOUT_S = 30  # until the remote shell answers: a busy host's .bashrc takes its time
_NOT_FOUND = 127
_TIMED_OUT = 124
_SMI_FIELDS = "index,name,memory.total,pci.bus_id,compute_cap,driver_version,uuid"
# What plumbum raises when ssh cannot log in or its connection drops: OSError covers its
# ProcessExecutionError and SSHCommsError (ssh exited), EOFError a shell that went away,
# CommandNotFound no ssh program. Anything else is a bug, left to reach the crash path.
SSH_ERRORS = (
    OSError,
    EOFError,
    ProcessExecutionError,
    ProcessTimedOut,
    ProcessLineTimedOut,
    ShellSessionError,
    CommandNotFound,
)


class Unreachable(Exception):
    """ssh could not log in; the message is ssh's own."""


def ssh_options(*, config: str | None = None, control: str | None = None) -> list[str]:
    """The options every ssh the wizard runs takes: the config file (only one that is on the
    machine where this ssh runs), BatchMode (a host that wants a password is unreachable,
    with ssh's words, not a prompt the wizard cannot answer), ConnectTimeout, and with a
    `control` folder one multiplexed connection (ControlMaster) whose sockets live there."""
    options = ["-F", config] if config else []
    options += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
    if control:
        options += [
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={control}/%C",
            "-o", "ControlPersist=60",
        ]  # fmt: skip
    return options


def ssh_argv(
    destination: str,
    *,
    port: int | None = None,
    config: str | None = None,
    control: str | None = None,
    tty: bool = False,
    options: Sequence[str] = (),
) -> list[str]:
    """The one ssh command line to a host, less the remote command: ssh_options, then
    `options` (e.g. `-O exit`), with `tty` a terminal for the remote command (it is hung up,
    and stops, when this ssh is stopped), the port, and `--` before `[user@]name` (nothing
    after it is read as an option, whatever the name)."""
    if destination.startswith("-") or destination.rpartition("@")[2].startswith("-"):
        raise ValueError(f"{destination!r}: a host or user name that ssh would read as an option")
    argv = ["ssh", *ssh_options(config=config, control=control), *options]
    argv += ["-tt", "-o", "LogLevel=ERROR"] if tty else []
    argv += ["-p", str(port)] if port else []
    return [*argv, "--", destination]


class _SshMachine(SshMachine):
    """plumbum's SshMachine, with `--` after ssh's options (the destination is never read
    as one, whatever its name), that keeps the ssh processes it starts in `started`."""

    def __init__(self, *args: Any, started: list[Any], **kwargs: Any) -> None:
        self._started = started  # before plumbum's __init__, which starts the first ssh
        super().__init__(*args, **kwargs)

    def popen(self, args: Any, ssh_opts: Any = (), **kwargs: Any) -> Any:
        proc = super().popen(args, [*ssh_opts, "--"], **kwargs)
        self._started.append(proc)
        return proc


class _Deadline:
    """Ends a login that has not finished in `seconds`: kills its ssh processes, then
    `stop()` (which ends the multiplexing master, a daemon that holds their pipes too).
    plumbum's own connect_timeout cannot: it closes the pipe that another thread is
    blocked reading, and waits with it (76 s for a 30 s limit)."""

    def __init__(self, seconds: float, stop: Callable[[], None]) -> None:
        self.started: list[Any] = []
        self._stop = stop
        self.passed = False
        self._done = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._timer.cancel()
            self._done = True

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.passed = True
            for proc in self.started:
                with contextlib.suppress(OSError):
                    proc.kill()
        self._stop()


class SshHost(Host):
    def __init__(
        self,
        name: str,
        *,
        user: str | None = None,
        port: int | None = None,
        ssh_config: str | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(label or name)
        if name.startswith("-") or (user or "").startswith("-"):
            raise ValueError(f"{name!r}: a host or user name that ssh would read as an option")
        self._sockets = tempfile.mkdtemp(prefix="wizard-ssh-")
        self._target = f"{user}@{name}" if user else name
        self._port, self._config = port, ssh_config
        options = ssh_options(config=ssh_config, control=self._sockets)
        deadline = _Deadline(LOGIN_TIMEOUT_S, self._end_master)
        try:
            with deadline:
                self.machine = _SshMachine(
                    name, user=user, port=port, ssh_opts=options, connect_timeout=None,
                    started=deadline.started,
                )  # fmt: skip
                self.session = self.machine.session()
        except SSH_ERRORS:  # all mean "could not log in"
            # A login that used up its time is not tried again: the limit is the limit.
            slow = f"no answer from ssh within {LOGIN_TIMEOUT_S} s"
            why = slow if deadline.passed else self._why_not()
            self._end_master()
            raise Unreachable(why) from None

    def _why_not(self) -> str:
        """ssh's own words for a failed login: plumbum's error may have lost them (a broken
        pipe when ssh exits first), so ask ssh once more, plainly."""
        done = capture([*self._ssh(), "true"], LOGIN_TIMEOUT_S)
        if done.returncode == _TIMED_OUT and not done.stdout:
            return f"no answer from ssh within {LOGIN_TIMEOUT_S} s"
        if done.returncode == 0:
            return "ssh logs in, but no shell answered there (plumbum could not start one)"
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"ssh exited with {done.returncode}"

    def close(self) -> None:
        """The sessions, then the multiplexing master (it would linger for ControlPersist)."""
        self.session.close()
        self.machine.close()
        self._end_master()

    def _end_master(self) -> None:
        """The multiplexing master, if one started, and its folder of sockets."""
        capture(self._ssh("-O", "exit"), 10)
        shutil.rmtree(self._sockets, ignore_errors=True)

    def _ssh(self, *options: str) -> list[str]:
        """ssh to this host over its multiplexed connection, as plumbum's session is."""
        return ssh_argv(
            self._target, port=self._port, config=self._config, control=self._sockets,
            options=options,
        )  # fmt: skip

    # -- the probes, as commands ------------------------------------------------------------

    def _sh(self, script: str, timeout: float = 10.0) -> CommandResult:
        """A POSIX shell snippet on the host, in the C locale, through the machine's one
        long-lived remote shell: a new ssh session for each probe would cost the remote
        shell's start (the user's .bashrc, often 0.1 s or more) every time. The session runs
        one command at a time (it locks); coreutils' `timeout` bounds each."""
        wrapped = (
            f"timeout -k 2 {timeout:g} env LC_ALL=C LANG=C sh -c {shlex.quote(script)} < /dev/null"
        )
        try:
            code, out, err = self.session.run(wrapped, retcode=None)
        except SSH_ERRORS as exc:  # the connection dropped: every later probe fails the same
            return CommandResult(("sh",), None, error=f"ssh to {self.name} failed: {exc}")
        if code == _TIMED_OUT:
            return CommandResult(
                ("sh",), None, _text(out), _text(err), error=f"no answer within {timeout:g} s"
            )
        return CommandResult(("sh",), code, _text(out), _text(err))

    def _command(self, argv: list[str], timeout: float, name: str) -> dict[str, Any]:
        result = self._sh(shlex.join(argv), timeout)
        if result.returncode == _NOT_FOUND and not result.stdout:
            return CommandResult(
                tuple(argv), None, error=f"{argv[0]}: command not found"
            ).to_record()
        return CommandResult(
            tuple(argv), result.returncode, result.stdout, result.stderr, result.error
        ).to_record()

    def _read_text(self, path: str, max_bytes: int) -> str | None:
        result = self._sh(f"head -c {max_bytes} {shlex.quote(path)}")
        return result.stdout if result.ok else None

    def _path_kind(self, path: str) -> str | None:
        result = self._sh(f"stat -L -c %F {shlex.quote(path)}")
        if not result.ok:
            return None
        kind = result.stdout.strip()
        return {"directory": "dir", "regular file": "file"}.get(
            kind, "file" if kind == "regular empty file" else "other"
        )

    def _glob(self, pattern: str) -> list[str]:
        # An unquoted variable is split and globbed by the shell, never run: the pattern
        # expands as it would here, and nothing in it is executed.
        script = f'p={shlex.quote(pattern)}; for f in $p; do [ -e "$f" ] && echo "$f"; done'
        result = self._sh(script)
        return result.stdout.splitlines() if result.ok else []

    def _realpath(self, path: str) -> str:
        result = self._sh(f"realpath -m {shlex.quote(path)}")
        return result.stdout.strip() if result.ok and result.stdout.strip() else path

    def _getenv(self, name: str) -> str | None:
        result = self._sh(f"printenv {shlex.quote(name)}")
        return result.stdout.rstrip("\n") if result.ok else None

    def _env_names(self, prefix: str) -> list[str]:
        # awk's ENVIRON gives the names alone: no value crosses the connection
        result = self._sh("awk 'BEGIN { for (name in ENVIRON) print name }'")
        names = result.stdout.splitlines() if result.ok else []
        return [name for name in names if name.startswith(prefix)]

    def _which(self, program: str) -> str | None:
        result = self._sh(f"command -v {shlex.quote(program)}")
        found = result.stdout.strip()
        return found if result.ok and found.startswith("/") else None

    def _statvfs(self, path: str) -> dict[str, int] | None:
        result = self._sh(f"df -P -B1 {shlex.quote(path)}")
        lines = result.stdout.splitlines() if result.ok else []
        fields = lines[-1].split() if len(lines) > 1 else []
        if len(fields) < 4:
            return None
        return {"total": int(fields[1]), "free": int(fields[3])}

    def _nvml(self) -> dict[str, Any]:
        """What NVML tells, through nvidia-smi (the remote host may have no Python): driver,
        CUDA version, each GPU; pair paths come from `nvidia-smi topo -m` in the GPU check."""
        query = self._sh(
            f"nvidia-smi --query-gpu={_SMI_FIELDS} --format=csv,noheader,nounits", timeout=20
        )
        if query.returncode == _NOT_FOUND:
            return {"error": f"nvidia-smi not found on {self.name}: no NVIDIA driver there"}
        if not query.ok:
            why = query.error or (query.output.strip().splitlines() or ["no output"])[-1]
            return {"error": f"nvidia-smi failed on {self.name}: {why}"}
        gpus = [_gpu(line) for line in query.stdout.splitlines() if line.strip()]
        header = self._sh("nvidia-smi", timeout=20).stdout
        cuda = re.search(r"CUDA Version:\s*([\d.]+)", header)
        return {
            "driver_version": gpus[0]["driver"] if gpus else "",
            "cuda_driver_version": cuda.group(1) if cuda else "",
            "gpus": [{k: v for k, v in g.items() if k != "driver"} for g in gpus],
            "pairs": [
                {"gpus": [i, j], "p2p_read": None, "p2p_nvlink": None, "common_ancestor": None}
                for i in range(len(gpus))
                for j in range(i + 1, len(gpus))
            ],
            "unread": [],
        }


def _text(data: bytes | str) -> str:
    return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data


def _gpu(line: str) -> dict[str, Any]:
    index, name, memory, bus, capability, driver, uuid = (f.strip() for f in line.split(","))
    return {
        "index": int(index),
        "name": name,
        "memory_mib": int(float(memory)),
        "compute_capability": capability,
        "pci_bus_id": bus,
        "uuid": uuid,
        "nvlinks": 0,
        "nvlink_version": None,
        "nvlink_generation": "",
        "nvlink_remotes": {},
        "pcie": {},
        "driver": driver,
    }
