"""A LocalHost whose filesystem is a temporary tree, for cases no recorded machine shows.

Paths are mapped under `root`, the environment is a dict, and programs are small scripts in
the tree that print what the real tools print. NVML answers are taken from a recorded
snapshot and changed only where a test says so.
"""

from __future__ import annotations

import copy
import glob
import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import yaml

from wizard.host import CommandResult, LocalHost

SNAPSHOTS = Path(__file__).resolve().parent.parent / "snapshots"


def recorded_nvml(snapshot: str = "h100-ubuntu2404.yaml", **changes: Any) -> dict[str, Any]:
    data = yaml.safe_load((SNAPSHOTS / snapshot).read_text())
    answer = copy.deepcopy(data["observations"]["nvml"]["query"])
    answer.update(changes)
    return answer


def recorded_output(command: str, snapshot: str = "h100-ubuntu2404.yaml") -> str:
    data = yaml.safe_load((SNAPSHOTS / snapshot).read_text())
    return data["observations"]["commands"][command]["stdout"]


class TreeHost(LocalHost):
    def __init__(
        self,
        root: Path,
        env: dict[str, str] | None = None,
        nvml: dict[str, Any] | None = None,
        timeout_cap: float | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        self.env = {"PATH": "/usr/bin:/bin", **(env or {})}
        self.nvml_answer = nvml or {"error": "libnvidia-ml.so.1 not found: no NVIDIA driver"}
        self.timeout_cap = timeout_cap

    # -- building the tree ------------------------------------------------------------------

    def write(self, path: str, text: str = "") -> Path:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def mkdir(self, path: str) -> None:
        (self.root / path.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def program(self, path: str, output: str, rc: int = 0, sleep: float = 0) -> None:
        """A script that prints `output` as a real tool would."""
        pause = f"sleep {sleep}\n" if sleep else ""
        script = f"#!/bin/sh\n{pause}cat <<'WIZARD_EOF'\n{output.rstrip()}\nWIZARD_EOF\nexit {rc}\n"
        target = self.write(path, script)
        target.chmod(target.stat().st_mode | stat.S_IXUSR)

    def symlink(self, path: str, to: str) -> None:
        link = self.root / path.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(to)

    # -- the Host, mapped into the tree -----------------------------------------------------

    def _in(self, path: str) -> str:
        return str(self.root) + path if path.startswith("/") else path

    def _out(self, path: str) -> str:
        return path[len(str(self.root)) :] if path.startswith(str(self.root)) else path

    def _run(self, argv: list[str], timeout: float) -> CommandResult:
        if self.timeout_cap is not None:
            timeout = min(timeout, self.timeout_cap)
        program = self._which(argv[0]) if "/" not in argv[0] else argv[0]
        if program is None or not os.access(self._in(program), os.X_OK):
            return CommandResult(tuple(argv), None, error=f"{argv[0]}: command not found")
        # an argument naming a path in the tree means that path (`grep -r /src`, say)
        args = [
            self._in(a) if a.startswith("/") and os.path.exists(self._in(a)) else a
            for a in argv[1:]
        ]
        return super()._run([self._in(program), *args], timeout)

    def _read_text(self, path: str, max_bytes: int) -> str | None:
        return super()._read_text(self._in(path), max_bytes)

    def _path_kind(self, path: str) -> str | None:
        return super()._path_kind(self._in(path))

    def _glob(self, pattern: str) -> list[str]:
        return [self._out(p) for p in glob.glob(self._in(pattern))]

    def _realpath(self, path: str) -> str:
        return self._out(os.path.realpath(self._in(path)))

    def _getenv(self, name: str) -> str | None:
        return self.env.get(name)

    def _env_names(self, prefix: str) -> list[str]:
        return [name for name in self.env if name.startswith(prefix)]

    def _which(self, program: str) -> str | None:
        for folder in self.env.get("PATH", "").split(":"):
            candidate = f"{folder}/{program}"
            if os.access(self._in(candidate), os.X_OK) and os.path.isfile(self._in(candidate)):
                return candidate
        return None

    def _statvfs(self, path: str) -> dict[str, int] | None:
        return super()._statvfs(self._in(path)) if os.path.exists(self._in(path)) else None

    def _nvml(self) -> dict[str, Any]:
        return self.nvml_answer


# What .ci/run installs, for a HidingHost to hide so a check fails before its fix runs.
SYSTEM_GTEST = (
    "/usr/include/gtest",
    "/usr/lib/x86_64-linux-gnu/libgtest",
    "/usr/local/include/gtest",
    "/usr/local/lib/libgtest",
)
SYSTEM_MPI = ("/usr/bin/mpirun", "/usr/bin/mpicc")


def run_ok(argv: list[str], cwd: Path, **env: str) -> str:
    """Run a built program or compiler; fail the test with its output unless it exits 0."""
    done = subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )
    assert done.returncode == 0, f"{shlex.join(argv)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class HidingHost(LocalHost):
    """This real machine, with some installed things hidden from the checks' view, so a test
    can show a check failing, apply a real fix, and see the check pass."""

    def __init__(self, hidden: tuple[str, ...]) -> None:
        super().__init__()
        self.hidden = hidden

    def _hides(self, path: str) -> bool:
        return any(path == h or path.startswith(h.rstrip("*")) for h in self.hidden)

    def _path_kind(self, path: str) -> str | None:
        return None if self._hides(path) else super()._path_kind(path)

    def _read_text(self, path: str, max_bytes: int) -> str | None:
        return None if self._hides(path) else super()._read_text(path, max_bytes)

    def _glob(self, pattern: str) -> list[str]:
        return [p for p in super()._glob(pattern) if not self._hides(p)]

    def _which(self, program: str) -> str | None:
        found = super()._which(program)
        return None if found and self._hides(found) else found
