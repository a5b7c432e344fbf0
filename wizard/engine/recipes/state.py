"""A run's saved state: one YAML file per run, rewritten atomically after every change.

A killed wizard loses nothing that had finished: the file on disk is always either the
previous complete state or the new one (temp file, fsync, rename). Only a folder that stops
taking new files mid-run gets the file written over itself (`_rewrite`). One live wizard
holds a run at a time (`hold`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wizard.paths import check_private, private_folder, runs_dir, writable_state_dir

PENDING, RUNNING, DONE, SKIPPED, FAILED, CANCELLED = (
    "pending",
    "running",
    "done",
    "skipped",
    "failed",
    "cancelled",
)
FINISHED = (DONE, SKIPPED)
FORMAT = 2  # 2 ends with a checksummed marker line
_END = re.compile(r"# end of wizard state, sha256 ([0-9a-f]{64})")
RUN_ID = re.compile(r"[a-z0-9][a-z0-9-]*")  # a recipe id (recipe.RECIPE_ID), -, a timestamp


class StateError(Exception):
    """A state file that cannot be used; the message says why and what to do."""


class RunBusy(Exception):
    """Another live wizard holds the run; the message names it and what to do."""


_held: dict[Path, int] = {}  # run folder -> the descriptor whose lock this process holds


def hold(folder: Path) -> None:
    """Take the run's lock (flock on `.lock` in its folder) for as long as this process
    lives: the kernel lets go when it ends, kill -9 included, so a lock is never stale.
    A second wizard of the same run (a resume while a run lives, two `--from` at once)
    gets RunBusy instead of running steps twice or killing the live one's."""
    if folder in _held:
        return
    try:
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateError(
            f"cannot lock run {folder.name} in {folder} ({exc.strerror or exc}); "
            "the wizard needs to write there"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        who = f"wizard (pid {holder})" if holder.isdigit() else "wizard"
        stop = f"`kill {holder}`" if holder.isdigit() else "Ctrl-C in its terminal"
        raise RunBusy(
            f"run {folder.name} is in use by another {who}: let it finish, or stop it "
            f"({stop}, and its steps are ended), then `wizard resume --run {folder.name}`"
        ) from None
    with contextlib.suppress(OSError):  # only for the message; a full disk refuses it
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[folder] = fd


def release(folder: Path) -> None:
    """Let go of the run's lock before its end, for another wizard to take: the job a
    `--batch` run submits continues the run itself."""
    fd = _held.pop(folder, None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock


def now() -> str:
    return dt.datetime.now().astimezone().replace(microsecond=0).isoformat()


@dataclass
class StepState:
    status: str = PENDING
    exit_code: int | None = None
    started: str | None = None
    finished: str | None = None
    duration_s: float | None = None
    log: str | None = None
    reason: str = ""
    command: str = ""
    results: dict[str, Any] = field(default_factory=dict)
    # A step run on several hosts: each builder's status, exit code, log and reason.
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RunState:
    run_id: str
    recipe: str
    recipe_path: str
    path: Path
    created: str = field(default_factory=now)
    updated: str = field(default_factory=now)
    answers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepState] = field(default_factory=dict)
    cluster: dict[str, Any] = field(default_factory=dict)  # the hosts of a run across hosts

    @property
    def folder(self) -> Path:
        return self.path.parent

    def step(self, step_id: str) -> StepState:
        return self.steps.setdefault(step_id, StepState())

    def first_unfinished(self) -> str | None:
        return next((sid for sid, s in self.steps.items() if s.status not in FINISHED), None)

    def save(self) -> None:
        self.updated = now()
        data = {"wizard_run": FORMAT, **asdict(self)}
        data.pop("path")
        body = yaml.dump(
            data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False
        )
        text = body + _end_marker(body)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".state.", dir=self.folder)
        except OSError as exc:  # the folder takes no new file: made read-only, or its mode
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and _rewrite(
                self.path, text.encode()
            ):
                return
            raise self._unsaved(exc) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise self._unsaved(exc) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self.folder in _held:
            _keep(self.path)

    def _unsaved(self, exc: OSError) -> StateError:
        """A full disk, or a folder and file that cannot be written: what is on disk is the
        last state saved (a step it shows running was not seen to end)."""
        return StateError(
            f"cannot save the state of run {self.run_id} in {self.folder} "
            f"({exc.strerror or exc}); the saved state is the one before, and a step it shows "
            f"running is run again by `wizard resume --run {self.run_id}` once there is room "
            "and the folder can be written"
        )


_kept: dict[Path, int] = {}  # a held run's state file -> a descriptor opened after its save


def _keep(path: Path) -> None:
    """Keep the state file just saved open for writing, so a folder made read-only (a
    chmod, a read-only mount) later in the run still lets `_rewrite` record how it ended."""
    old = _kept.pop(path, None)
    if old is not None:
        os.close(old)
    with contextlib.suppress(OSError):
        _kept[path] = os.open(path, os.O_WRONLY | os.O_CLOEXEC)


def _rewrite(path: Path, data: bytes) -> bool:
    """Write a state over the saved one, when its folder takes no new file but the file
    can still be written. Not atomic, so only then: a file cut short by a crash fails its
    end marker and is known for what it is. False when it cannot be written either."""
    fd = _kept.get(path)
    opened = None
    if fd is None:
        try:
            fd = opened = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return False
    try:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], done)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
        return True
    except OSError:
        return False
    finally:
        if opened is not None:
            os.close(opened)


def _end_marker(body: str) -> str:
    """The last line of a state file: proof that it was written whole (a file cut at a line
    boundary is still valid YAML, with steps missing)."""
    return f"# end of wizard state, sha256 {hashlib.sha256(body.encode()).hexdigest()}\n"


def new_run(
    recipe_id: str, recipe_path: str, step_ids: list[str], answers: dict[str, str]
) -> RunState:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    writable_state_dir()  # or a clear error naming the folder and XDG_STATE_HOME
    base = runs_dir()
    if base.exists() and not base.is_dir():
        raise StateError(
            f"{base} is not a folder: the wizard keeps its runs there; move it away "
            f"(`mv {base} {base}.old`) and start again"
        )
    try:
        base = private_folder(base)
    except OSError as exc:
        raise StateError(f"cannot make {base} ({exc.strerror or exc})") from None
    run_id, n = f"{recipe_id}-{stamp}", 1
    while True:  # mkdir decides, so runs started at the same second get their own folders
        try:
            (base / run_id).mkdir(mode=0o700)
            os.chmod(base / run_id, 0o700)  # whatever the umask
            break
        except FileExistsError:
            n += 1
            run_id = f"{recipe_id}-{stamp}-{n}"
        except OSError as exc:
            raise StateError(
                f"cannot make a run folder in {base} ({exc.strerror or exc})"
            ) from None
    hold(base / run_id)
    state = RunState(
        run_id,
        recipe_id,
        recipe_path,
        base / run_id / "state.yaml",
        answers=dict(answers),
        steps={sid: StepState() for sid in step_ids},
    )
    state.save()
    try:
        _write_latest(run_id)
    except OSError as exc:
        raise state._unsaved(exc) from None
    return state


def _write_latest(run_id: str) -> None:
    latest = runs_dir() / "latest"
    # One temporary file per writer, made 600 by mkstemp.
    fd, tmp = tempfile.mkstemp(prefix=".latest.", dir=latest.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(run_id + "\n")
        os.replace(tmp, latest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def latest_id() -> str | None:
    try:
        return (runs_dir() / "latest").read_text().strip() or None
    except OSError:
        return None


def is_run_of(run_id: str, recipe_id: str) -> bool:
    """Whether a run id is one of this recipe's (the recipe id, a timestamp, maybe -N)."""
    return re.fullmatch(re.escape(recipe_id) + r"-\d{8}-\d{6}(-\d+)?", run_id) is not None


def latest_for(recipe_id: str) -> str | None:
    """The newest run of a recipe (run ids start with the recipe id and a timestamp)."""
    base = runs_dir()
    if not base.is_dir():
        return None
    runs = [p.name for p in base.iterdir() if p.is_dir() and is_run_of(p.name, recipe_id)]
    return max(
        runs,
        key=lambda name: (name[len(recipe_id) : len(recipe_id) + 16], len(name), name),
        default=None,
    )


def load(run_id: str | None = None, *, set_aside: bool = True, lock: bool = False) -> RunState:
    """The named run, or the latest. A file that cannot be read, or was not written whole,
    is moved aside (never overwritten) and reported with the runs still usable;
    `set_aside=False` (for read-only commands) only reports it. `lock` holds the run
    first (see `hold`), for a wizard that will run its steps."""
    run_id = run_id or latest_id()
    if run_id is None:
        raise StateError("no saved run yet; start one with `wizard run flagcx`")
    if not RUN_ID.fullmatch(run_id):
        raise StateError(
            f"{run_id!r} is not a run id (a recipe id and a timestamp, as `wizard status` "
            f"lists them), so it cannot name a folder in {runs_dir()}.{_others(run_id)}"
        )
    path = runs_dir() / run_id / "state.yaml"
    check_private(path)
    if lock and path.parent.is_dir():
        hold(path.parent)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        aside = sorted(path.parent.glob("state.yaml.corrupt-*"))
        why = f"its state was unreadable and kept as {aside[-1]}" if aside else f"no {path}"
        raise StateError(f"run {run_id!r} cannot be used: {why}.{_others(run_id)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, str(exc), set_aside) from None
    try:
        data = _parse(text)
        if data.get("run_id") != run_id:
            raise ValueError(f"it is the state of run {data.get('run_id')!r}, copied here")
        steps = {sid: StepState(**s) for sid, s in data.pop("steps").items()}
        data.pop("wizard_run")
        return RunState(**data, steps=steps, path=path)
    except (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError) as exc:
        why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise _unreadable(path, why, set_aside) from None


def _parse(text: str) -> dict[str, Any]:
    body, _, last = text.rstrip("\n").rpartition("\n")
    marked = _END.fullmatch(last)
    if marked and hashlib.sha256((body + "\n").encode()).hexdigest() != marked.group(1):
        raise ValueError("its checksum does not match: the file was changed or damaged")
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(data, dict) or data.get("wizard_run") not in (1, FORMAT):
        raise ValueError("not a wizard run state")
    if data["wizard_run"] == FORMAT and not marked:  # format 1 predates the marker
        raise ValueError("it was cut short: the end marker is missing")
    return data


def saved_runs() -> list[str]:
    """Run ids with a state file, newest first."""
    base = runs_dir()
    if not base.is_dir():
        return []
    runs = [p.parent for p in base.glob("*/state.yaml")]
    return [p.name for p in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)]


def _others(excluded: str) -> str:
    others = [r for r in saved_runs() if r != excluded][:5]
    if not others:
        return " Start again with `wizard run RECIPE`."
    return (
        f" Other saved runs, newest first: {', '.join(others)} "
        f"(`wizard status --run {others[0]}`, `wizard resume --run {others[0]}`)."
    )


def _unreadable(path: Path, why: str, set_aside: bool) -> StateError:
    run_id = path.parent.name
    if not set_aside:
        return StateError(
            f"the saved state {path} cannot be read ({why}); `wizard resume --run {run_id}` "
            f"will keep it aside.{_others(run_id)}"
        )
    aside = path.with_name(f"state.yaml.corrupt-{dt.datetime.now():%Y%m%d-%H%M%S}")
    os.replace(path, aside)
    return StateError(
        f"the saved state {path} cannot be read ({why}); it was kept as {aside}." + _others(run_id)
    )
