"""The Host interface: memoised, recordable observations of one machine.

Checks never call subprocess, open() or os.environ themselves; they ask a Host. Every answer
is memoised (two checks asking the same question share one probe, even when they ask at the
same moment from two threads) and kept in `observations`, which is what a snapshot stores.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

# Kinds of observation, as they are stored in a snapshot.
KINDS = ("commands", "files", "paths", "globs", "realpaths", "env", "which", "statvfs", "nvml")

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PASSPHRASE|KEY|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)


def is_secret_name(name: str) -> bool:
    """True for environment variable names that suggest a credential; they are never recorded."""
    return bool(_SECRET_NAME.search(name))


@dataclass(frozen=True)
class CommandResult:
    """What one command did. `error` is set when it could not run or did not finish."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0

    @property
    def output(self) -> str:
        """stdout and stderr together: many tools print their version on either."""
        return self.stdout + self.stderr

    def to_record(self) -> dict[str, Any]:
        return {
            "rc": self.returncode,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": self.error,
        }

    @classmethod
    def from_record(cls, argv: tuple[str, ...], record: dict[str, Any]) -> CommandResult:
        return cls(
            argv=argv,
            returncode=record.get("rc"),
            stdout=record.get("stdout") or "",
            stderr=record.get("stderr") or "",
            error=record.get("error"),
        )


@dataclass(frozen=True)
class Timing:
    kind: str
    key: str
    seconds: float


class Host(ABC):
    """One machine as the checks see it."""

    # The checks a recorded host holds observations for (None: a live host, every check).
    recorded_checks: frozenset[str] | None = None

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._memo: dict[tuple[str, str], Future[Any]] = {}
        self.observations: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self.timings: list[Timing] = []

    # -- the questions a check may ask ------------------------------------------------------

    def run(
        self, argv: list[str], *, timeout: float = 10.0, key: str | None = None
    ) -> CommandResult:
        """Run a command (never through a shell). `key` names the probe in a snapshot when
        argv itself is not a stable name (an inline script, say)."""
        name = key or shlex.join(argv)
        record = self._observe("commands", name, lambda: self._command(list(argv), timeout, name))
        return CommandResult.from_record(tuple(argv), record)

    def read_text(self, path: str, max_bytes: int = 65536) -> str | None:
        """The first `max_bytes` of a file as text, or None when it cannot be read."""
        return self._observe("files", path, lambda: self._read_text(path, max_bytes))

    def path_kind(self, path: str) -> str | None:
        """'file', 'dir', 'other', or None when nothing is there (links are followed)."""
        return self._observe("paths", path, lambda: self._path_kind(path))

    def exists(self, path: str) -> bool:
        return self.path_kind(path) is not None

    def is_dir(self, path: str) -> bool:
        return self.path_kind(path) == "dir"

    def is_file(self, path: str) -> bool:
        return self.path_kind(path) == "file"

    def glob(self, pattern: str) -> list[str]:
        return list(self._observe("globs", pattern, lambda: sorted(self._glob(pattern))))

    def realpath(self, path: str) -> str:
        return self._observe("realpaths", path, lambda: self._realpath(path))

    def getenv(self, name: str) -> str | None:
        return self._observe("env", name, lambda: self._getenv(name))

    def env_names(self, prefix: str) -> list[str]:
        """The names of the environment variables that start with `prefix`; their values are
        asked one by one with getenv, so a snapshot never holds a credential's value (nor,
        like getenv's, a credential's name)."""
        key = f"{prefix}*"
        names = list(self._observe("env", key, lambda: sorted(self._env_names(prefix))))
        with self._lock:
            if key in self.observations["env"]:
                self.observations["env"][key] = [n for n in names if not is_secret_name(n)]
        return names

    def which(self, program: str) -> str | None:
        """The program's path on this host's PATH, or None."""
        return self._observe("which", program, lambda: self._which(program))

    def statvfs(self, path: str) -> dict[str, int] | None:
        """{'total': bytes, 'free': bytes} of the filesystem holding `path`, or None."""
        return self._observe("statvfs", path, lambda: self._statvfs(path))

    def nvml(self) -> dict[str, Any]:
        """NVIDIA's management library's answers: driver, CUDA version, GPUs, links.

        {'error': why} when there is no driver or NVML fails."""
        return self._observe("nvml", "query", self._nvml)

    def close(self) -> None:
        """Let go of what the host holds open (an SSH connection); nothing, by default."""
        return None

    # -- what a concrete host implements ----------------------------------------------------

    @abstractmethod
    def _command(self, argv: list[str], timeout: float, name: str) -> dict[str, Any]:
        """Run argv (or look it up under `name`) and return CommandResult.to_record()."""

    @abstractmethod
    def _read_text(self, path: str, max_bytes: int) -> str | None: ...

    @abstractmethod
    def _path_kind(self, path: str) -> str | None: ...

    @abstractmethod
    def _glob(self, pattern: str) -> list[str]: ...

    @abstractmethod
    def _realpath(self, path: str) -> str: ...

    @abstractmethod
    def _getenv(self, name: str) -> str | None: ...

    @abstractmethod
    def _env_names(self, prefix: str) -> list[str]: ...

    @abstractmethod
    def _which(self, program: str) -> str | None: ...

    @abstractmethod
    def _statvfs(self, path: str) -> dict[str, int] | None: ...

    @abstractmethod
    def _nvml(self) -> dict[str, Any]: ...

    # -- memo and record --------------------------------------------------------------------

    def _observe(self, kind: str, key: str, compute: Any) -> Any:
        with self._lock:
            future = self._memo.get((kind, key))
            owner = future is None
            if owner:
                future = Future()
                self._memo[(kind, key)] = future
        if not owner:
            return future.result()
        started = time.perf_counter()
        try:
            value = compute()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        seconds = time.perf_counter() - started
        with self._lock:
            self.timings.append(Timing(kind, key, seconds))
            if not (kind == "env" and is_secret_name(key)):
                self.observations[kind][key] = value
        future.set_result(value)
        return value

    def slowest(self) -> Timing | None:
        """The single slowest probe this host answered."""
        with self._lock:
            return max(self.timings, key=lambda t: t.seconds, default=None)
