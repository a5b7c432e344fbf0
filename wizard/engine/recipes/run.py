"""Run a recipe: fill its parameters, plan which steps run or are skipped, run them, save.

The same engine serves the plain CLI, the app and the tests; what the user sees goes
through a `Listener`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from checks.base import Finding, Status
from wizard.engine.doctor.diagnosis import Diagnosis
from wizard.engine.recipes import checkout
from wizard.engine.recipes import state as st
from wizard.engine.recipes.parsers import PARSERS
from wizard.engine.recipes.recipe import MAKE_UNSAFE, NoCommand, Recipe, Step, did_you_mean, render
from wizard.engine.recipes.runner import Outcome, StepRunner, signal_words
from wizard.host import LocalHost
from wizard.host.local import users_path
from wizard.paths import data_dir, private_file

# NVLink multicast can take down every GPU of a shared host: off unless the caller chose.
SAFE_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}
# Variables mpirun must forward to every rank (Open MPI forwards none by itself).
FORWARD = re.compile(r"(NCCL|FLAGCX|TORCH|NVSHMEM|CUDA|UCX)_\w+|LD_LIBRARY_PATH|PATH")
FALSE = ("", "0", "false", "no", "off", "none")
DONE_IF_TIMEOUT_S = 60.0


class ParamError(Exception):
    """A parameter that has no value or a bad one; the message names it and how to set it.
    `missing` is the name of a parameter that only lacks a value (it can be asked for)."""

    def __init__(self, message: str, missing: str | None = None) -> None:
        super().__init__(message)
        self.missing = missing


class Listener(Protocol):
    def step_started(self, index: int, total: int, step: Step, command: str) -> None: ...
    def lines(self, texts: list[str]) -> None: ...
    def step_skipped(self, index: int, total: int, step: Step, reason: str) -> None: ...
    def step_finished(self, step: Step, result: st.StepState, outcome: Outcome) -> None: ...


class Placement(Protocol):
    """Where a run's ranks go across hosts, for the launcher's parameters (the many-hosts
    engine's Cluster is one; recipes know no more of hosts than this)."""

    @property
    def hosts(self) -> Sequence[object]: ...
    @property
    def ranks(self) -> int: ...
    def launcher_flags(self, flavor: str) -> list[str]: ...
    def rendezvous(self) -> tuple[str, int]: ...
    def hostfile_lines(self) -> list[str]: ...


class Spread(Protocol):
    """A run across hosts, as execute() needs it (the many-hosts engine's Across is one):
    the variables the launcher needs, and a step that runs on every host."""

    def launch_env(self, flavor: str) -> dict[str, str]: ...
    def run_everywhere(
        self,
        step: Step,
        index: int,
        total: int,
        state: st.RunState,
        base_env: dict[str, str],
        listener: Listener,
        runner: StepRunner,
    ) -> Outcome: ...


def recipe_facts(report: Diagnosis) -> dict[str, Any]:
    """The doctor's facts, plus the target's, for filling a recipe's parameters."""
    vendor = report.target.vendor
    facts = report.facts()
    nvidia = vendor.key == "nvidia"
    return {
        **facts,
        "target.vendor": vendor.key,
        "target.make_flag": vendor.make_flag,
        "target.adaptor": vendor.adaptor,
        # The homes FlagCX's make takes: the CUDA toolkit and NCCL the doctor found, or the
        # other vendor's SDK (its CCL home is left to FlagCX's Makefile default).
        "target.device_home": facts.get("cuda.home" if nvidia else "accel.device_home"),
        "target.ccl_home": facts.get("nccl.home") if nvidia else None,
    }


def failing_requirements(recipe: Recipe, report: Diagnosis) -> list[Finding]:
    """Failed (or crashed) findings the recipe requires. `target` in `requires` stands for
    every check the doctor's target requires (so one recipe serves every vendor)."""
    wanted = set(recipe.requires)
    if "target" in wanted:
        wanted |= set(report.target.requires)
    bad = (Status.FAIL, Status.CRASH)
    return [f for f in report.findings if f.id in wanted and f.status in bad]


def parse_sets(pairs: list[str]) -> dict[str, str]:
    answers = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParamError(f"--set takes key=value, not {pair!r}")
        answers[key.strip()] = value
    return answers


def check_answers(recipe: Recipe, answers: dict[str, str]) -> None:
    """ParamError for a key the recipe has no parameter for, with the closest it has."""
    unknown = sorted(set(answers) - set(recipe.params))
    if unknown:
        hint = did_you_mean(unknown[0], list(recipe.params)) if len(unknown) == 1 else ""
        raise ParamError(
            f"recipe {recipe.id} has no parameter {', '.join(unknown)}{hint}; it takes: "
            f"{', '.join(recipe.params)}"
        )


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def step_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    if base is None:  # the doctor's PATH: never the wizard's own venv (see users_path)
        env["PATH"] = users_path()
    for name, value in SAFE_ENV.items():
        env.setdefault(name, value)
    return env


def mpi_forward_flags(flavor: str, env: dict[str, str]) -> list[str]:
    names = sorted(n for n in env if FORWARD.fullmatch(n))
    if flavor == "Open MPI":
        return [arg for name in names for arg in ("-x", name)]
    if flavor in ("MPICH", "Intel MPI") and names:
        return ["-genvlist", ",".join(names)]
    return []


def resolve(
    recipe: Recipe,
    facts: dict[str, Any],
    answers: dict[str, str],
    run_dir: Path,
    *,
    missing: list[str] | None = None,
    cluster: Placement | None = None,
) -> dict[str, Any]:
    """Parameter values: --set answers, then doctor facts, then defaults. A parameter with
    none raises ParamError; given a `missing` list (to show a plan anyway), it is added there
    and stands as `<name?>`. With a cluster, the launcher's values place ranks on its hosts."""
    check_answers(recipe, answers)
    values = _params(recipe, facts, answers, missing)
    if recipe.checkout:  # again, with what the checkout those values name has
        values = _params(recipe, {**facts, **checkout_facts(recipe, values)}, answers, missing)
    values = _expand_all(recipe, values)
    env = step_environment()
    # The host's own CPUs and memory: across hosts its doctor's, else this machine's.
    cpus = _int_or(facts.get(HOST_NPROC), 0) or nproc()
    values["nproc"] = cpus
    values["build_jobs"] = build_jobs(cpus, _int_or(facts.get(HOST_MEM_AVAILABLE), 0) or None)
    values["mpi_flavor"] = str(facts.get("mpi.flavor", ""))
    values["mpi_env"] = mpi_forward_flags(values["mpi_flavor"], env)
    values["mpi_hosts"] = cluster.launcher_flags(values["mpi_flavor"]) if cluster else []
    values["ranks"] = cluster.ranks if cluster else _int_or(values.get("gpus"), 1)
    # torchrun's nodes: every host at once across hosts (node_rank is set per host).
    master = cluster.rendezvous() if cluster else ("127.0.0.1", free_port())
    values["nnodes"] = len(cluster.hosts) if cluster else 1
    values["hostfile_lines"] = cluster.hostfile_lines() if cluster else []
    values["node_rank"] = 0
    values["master_addr"], values["master_port"] = master
    values["run_dir"] = str(run_dir)
    values["steps_dir"] = str(data_dir("steps"))  # the recipes' own tools (steps/tools/)
    _refuse_unsafe_for_make(recipe, values, set(missing or ()))
    return values


def checkout_facts(recipe: Recipe, values: dict[str, Any]) -> dict[str, Any]:
    """The `checkout.*` facts of the folder the recipe's `checkout` names, now."""
    if not recipe.checkout:
        return {}
    reader, path = recipe.checkout
    return checkout.read(reader, render(path, values, quote=False))


def refresh_checkout(
    recipe: Recipe, values: dict[str, Any], answers: dict[str, str]
) -> dict[str, Any]:
    """The values again, for parameters that come from the checkout (--set still wins): a
    step may have cloned it, or moved it to another commit, since they were filled."""
    if not recipe.checkout:
        return values
    # The checkout's parameters, and the lists whose `all` may stand for one of them.
    again = {
        name
        for name, param in recipe.params.items()
        if (param.fact or "").startswith("checkout.") or param.all is not None
    }
    fresh = _params(recipe, checkout_facts(recipe, values), answers, None, only=again)
    return _expand_all(recipe, {**values, **fresh})


def _expand_all(recipe: Recipe, values: dict[str, Any]) -> dict[str, Any]:
    """`all` in a list parameter that names an `all` list: that list's items (while that list
    is not known yet, say before a clone, `all` stays and matches every item)."""
    for name, param in recipe.params.items():
        if param.all is None or not isinstance(values.get(name), list):
            continue
        words = [w for word in values[name] for w in str(word).split(",") if w]
        # The items steps are gated on (`when: ITEM in name`): a word no step has is a typo.
        known = [s.when_item for s in recipe.steps if s.when == name and s.when_item]
        unknown = [w for w in words if known and w != "all" and w not in known]
        if unknown:
            raise ParamError(
                f"{name}: no step runs {', '.join(unknown)}; the recipe has "
                f"{', '.join(known)} (or all)"
            )
        every = values.get(param.all)
        if "all" in words and isinstance(every, list) and every:
            listed = [w for w in every if not known or w in known]
            words = list(dict.fromkeys([*(w for w in words if w != "all"), *listed]))
        values[name] = words
    return values


def _params(
    recipe: Recipe,
    facts: dict[str, Any],
    answers: dict[str, str],
    missing: list[str] | None,
    only: set[str] | None = None,
) -> dict[str, Any]:
    """Each parameter's value (or those named in `only`): --set, a finished run's, the
    fact's, the default."""
    values: dict[str, Any] = {}
    prior = prior_runs(recipe) if recipe.after else {}
    for name, param in recipe.params.items():
        if only is not None and name not in only:
            continue
        from_run = _from_run(param.run, prior) if param.run else None
        if name in answers:
            value: Any = answers[name]
        elif from_run not in (None, ""):
            value = from_run
        elif param.run:  # no finished run to take it from: nothing else may stand in
            if missing is not None:
                if name not in missing:
                    missing.append(name)
                values[name] = f"<{name}?>"
                continue
            recipe_id = param.run.split(".")[0]
            raise ParamError(
                f"parameter {name!r} comes from a finished {recipe_id} run, and there is none: "
                f"run `wizard run {recipe_id}` first, or pass --set {name}=VALUE"
            )
        elif param.fact and facts.get(param.fact) not in (None, ""):
            value = facts[param.fact]
        elif param.default is not None:
            value = param.default
        elif missing is not None:
            if name not in missing:
                missing.append(name)
            values[name] = f"<{name}?>"
            continue
        else:
            how = f" (the doctor found no {param.fact})" if param.fact else ""
            raise ParamError(
                f"parameter {name!r} has no value{how}; pass --set {name}=VALUE"
                + (f"  ({param.help})" if param.help else ""),
                missing=name,
            )
        values[name] = _convert(name, param.kind, value)
    return values


# The run folder of a run not saved yet: a run is saved only once it starts, after its
# values are known (a usage error saves nothing); `start_run` puts the real one in place.
UNSAVED_RUN = Path("<run folder>")


def start_run(recipe: Recipe, answers: dict[str, str], values: dict[str, Any]) -> st.RunState:
    """Save a new run of the recipe, now that it starts, and point `run_dir` at its folder."""
    state = st.new_run(recipe.id, str(recipe.path), [s.id for s in recipe.steps], answers)
    values["run_dir"] = str(state.folder)
    return state


def misfit(recipe: Recipe, state: st.RunState) -> str | None:
    """Why a saved run's answers no longer fit its recipe (a parameter it no longer has, or
    one given before the recipe checked its answers), or None."""
    unknown = sorted(set(state.answers) - set(recipe.params))
    if not unknown:
        return None
    return (
        f"its answers no longer fit the {recipe.id} recipe: it has no parameter "
        f"{', '.join(unknown)}"
    )


def _refuse_unsafe_for_make(recipe: Recipe, values: dict[str, Any], missing: set[str]) -> None:
    """Shell quoting does not protect a value from make: `CCL_HOME='$(shell touch x)'` is
    expanded by make, and `a;b` runs b in the shell of a Makefile's recipe. Such values are
    refused, with the step and parameter named."""
    for step in recipe.steps:
        for name in sorted(step.make_params - missing):
            value = values.get(name)
            for word in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(word, str) and (bad := MAKE_UNSAFE.search(word)):
                    raise ParamError(
                        f"parameter {name!r} is {word!r}, which reaches make in step "
                        f"{step.id!r}: make would expand `$(`/`${{` in it and its recipes' "
                        f"shells would run `;`, `|` or backquotes, so a value there may not "
                        f"hold {bad.group()!r} (nor $ ` ; & | < > ( ) \\ quotes or newlines)"
                    )


def prior_runs(recipe: Recipe) -> dict[str, st.RunState | None]:
    """For each recipe this one comes after (`after:`), its newest finished run, or None."""
    found: dict[str, st.RunState | None] = {}
    for recipe_id in recipe.after:
        found[recipe_id] = None
        for run_id in st.saved_runs():  # newest first
            if not st.is_run_of(run_id, recipe_id):
                continue
            try:
                run = st.load(run_id, set_aside=False)
            except st.StateError:
                continue
            if run.first_unfinished() is None:
                found[recipe_id] = run
                break
    return found


def _from_run(reference: str, prior: dict[str, st.RunState | None]) -> Any:
    recipe_id, _, name = reference.partition(".")
    run = prior.get(recipe_id)
    return run.params.get(name) if run is not None else None


# Facts a host's doctor across hosts adds (wizard.engine.hosts.across.discover): its usable
# CPUs (`nproc` there) and its MemAvailable in KiB, so its builds use its own size, not this
# machine's.
HOST_NPROC, HOST_MEM_AVAILABLE = "host.nproc", "host.mem_available_kib"


def mem_available_kib(meminfo: str) -> int | None:
    """MemAvailable from /proc/meminfo's text, in KiB."""
    match = re.search(r"^MemAvailable:\s+(\d+)", meminfo, re.MULTILINE)
    return int(match.group(1)) if match else None


def build_jobs(cpus: int | None = None, kib: int | None = None) -> int:
    """make's -j for a heavy build (nvcc takes up to 2 GiB a job): one per core, at most
    one per 2 GiB of MemAvailable, at least one; so a VM does not swap itself to death.
    Without arguments, this machine's."""
    cpus = cpus or nproc()
    if kib is None:
        try:
            with open("/proc/meminfo") as f:
                kib = mem_available_kib(f.read())
        except OSError:
            kib = None
    by_memory = kib // (2 * 1024 * 1024) if kib else cpus
    return max(1, min(cpus, by_memory))


def free_port() -> int:
    """A TCP port nothing listens on here now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _convert(name: str, kind: str, value: Any) -> Any:
    if kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ParamError(f"parameter {name!r} must be a whole number, not {value!r}") from None
    if kind == "path":
        return os.path.abspath(os.path.expanduser(str(value)))
    if kind == "args":
        try:
            return value if isinstance(value, list) else shlex.split(str(value))
        except ValueError as exc:
            raise ParamError(f"parameter {name!r}: {exc}") from None
    return str(value) if not isinstance(value, bool) else ("1" if value else "")


@dataclass
class Planned:
    index: int
    step: Step
    action: str  # "run" or "skip"
    reason: str = ""


def done_reason(step: Step, values: dict[str, Any]) -> str | None:
    """Why the step's work is already done, or None. Paths and commands are local."""
    cond = step.done_if
    if cond is None:
        return None
    if cond.exists:
        paths = [render(p, values, quote=False) for p in cond.exists]
        if all(os.path.exists(p) for p in paths):
            return f"{', '.join(paths)} exists"
        return None
    if cond.newer:
        target = render(cond.newer, values, quote=False)
        if not os.path.exists(target):
            return None
        sources = [render(p, values, quote=False) for p in cond.than]
        newest = max((m for s in sources for m in _mtimes(s)), default=0.0)
        if os.path.getmtime(target) >= newest:
            return f"{target} is newer than its sources"
        return None
    if cond.command:
        command = render(cond.command, values, quote=True)
        cwd = step_cwd(step, values)
        if cwd and not os.path.isdir(cwd):  # its folder is not there yet: nothing is done
            return None
        return f"`{command}` succeeded" if _succeeds(command, cwd) else None
    return None


def _succeeds(command: str, cwd: str | None) -> bool:
    """Whether a done_if command exits 0 within DONE_IF_TIMEOUT_S. One that takes longer is
    ended, with all it started, and counts as not done: the step runs. Ctrl-C ends it too."""
    proc = subprocess.Popen(
        ["bash", "-c", command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        env=step_environment(),
        start_new_session=True,  # its own group, so all it started can be ended
    )
    try:
        return proc.wait(timeout=DONE_IF_TIMEOUT_S) == 0
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if isinstance(exc, KeyboardInterrupt):
            raise
        return False


def _mtimes(path: str) -> Iterator[float]:
    if os.path.isfile(path):
        yield os.path.getmtime(path)
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "build"]
        for name in files:
            try:
                yield os.path.getmtime(os.path.join(root, name))
            except OSError:
                continue


def drop_lost_steps(recipe: Recipe, state: st.RunState) -> list[str]:
    """Steps the run recorded that its recipe no longer has (it was edited since): taken
    out of the run, saved, and returned so the caller says so. Kept, they would stay
    unfinished forever and the run could never end."""
    known = {step.id for step in recipe.steps}
    lost = [sid for sid in state.steps if sid not in known]
    if lost:
        for sid in lost:
            del state.steps[sid]
        state.save()
    return lost


def step_cwd(step: Step, values: dict[str, Any]) -> str | None:
    """The step's working folder, filled in and ~ expanded; None when it names none."""
    return os.path.expanduser(render(step.cwd, values, quote=False)) if step.cwd else None


def not_wanted(step: Step, values: dict[str, Any]) -> str | None:
    """Why a step is not wanted: its `when` parameter is empty, 0, false, no, off or none,
    or (`when: ITEM in PARAM`) the list PARAM holds neither ITEM nor `all`."""
    if not step.when:
        return None
    value = values.get(step.when, "")
    if step.when_item:
        listed = value if isinstance(value, list) else re.split(r"[\s,]+", str(value))
        words = [w for word in listed for w in re.split(r"[\s,]+", str(word)) if w]
        if step.when_item in words or "all" in words:
            return None
        return f"{step.when_item} is not in {step.when} ({', '.join(words) or 'empty'})"
    return f"{step.when} is not set" if str(value).strip().lower() in FALSE else None


def plan(
    recipe: Recipe,
    values: dict[str, Any],
    state: st.RunState | None,
    start: str | None = None,
    *,
    across: bool = False,
    judge_done: bool = True,
) -> list[Planned]:
    """What would happen, step by step. `start` (--from) re-runs from that step on.
    done_if is a preview here (`judge_done`): a run asks it again just before each step
    starts, since an earlier step may have made or removed what it looks at. Across hosts,
    an every-host step's done_if is asked on each host when it runs."""
    if start:
        recipe.index(start)  # an unknown step is an error before anything is planned
    return [
        planned(recipe, index, values, state, start, across=across, judge_done=judge_done)
        for index in range(len(recipe.steps))
    ]


def planned(
    recipe: Recipe,
    index: int,
    values: dict[str, Any],
    state: st.RunState | None,
    start: str | None = None,
    *,
    across: bool = False,
    judge_done: bool = True,
) -> Planned:
    """Whether step `index` runs or is skipped, and why, judged now."""
    step = recipe.steps[index]
    start_index = recipe.index(start) if start else None
    saved = state.steps.get(step.id) if state else None
    if unwanted := not_wanted(step, values):
        return Planned(index, step, "skip", unwanted)
    if across and step.where == "single-host":
        return Planned(index, step, "skip", "it runs on a single host only")
    if start_index is not None and index < start_index:
        return Planned(index, step, "skip", f"before --from {start}")
    if start_index is not None:
        return Planned(index, step, "run", "--from")
    if saved and saved.status in st.FINISHED:
        return Planned(index, step, "skip", f"{saved.status} earlier in this run")
    if across and step.where in ("every-host", "all-hosts"):
        return Planned(index, step, "run")
    if judge_done and (reason := done_reason(step, values)):
        return Planned(index, step, "skip", f"already done: {reason}")
    return Planned(index, step, "run")


class Cancelled(Exception):
    """The user stopped the run; its state is saved. `started` is False when the cancel
    came between steps: the named step did not start."""

    def __init__(self, step_id: str, *, started: bool = True, stopped: str = "") -> None:
        super().__init__(step_id)
        self.step_id, self.started = step_id, started
        self.stopped = stopped or "its processes were ended"  # as the runner says it


def execute(
    recipe: Recipe,
    state: st.RunState,
    values: dict[str, Any],
    listener: Listener,
    *,
    start: str | None = None,
    runner: StepRunner | None = None,
    across: Spread | None = None,
) -> bool:
    """Run the plan, saving state after every change. True when no step failed.
    Raises Cancelled (state saved) when the user stops it, RunBusy when another wizard
    holds the run. Across hosts, every-host and all-hosts steps run through `across`."""
    st.hold(state.folder)  # one live wizard per run: RunBusy when another has it
    runner = runner or StepRunner(LocalHost())
    state.params = {k: v for k, v in values.items() if k not in ("mpi_env", "mpi_flavor")}
    base_env = step_environment()
    base_env["WIZARD_RUN_ID"] = state.run_id
    if across:
        for name, value in across.launch_env(values.get("mpi_flavor", "")).items():
            base_env.setdefault(name, value)
    steps = plan(recipe, values, state, start, across=across is not None, judge_done=False)
    total = len(steps)
    all_ok = True
    for item in steps:
        step, saved = item.step, state.step(item.step.id)
        if runner.cancelled:  # pressed between two steps: the next one does not start
            raise Cancelled(step.id, started=False)
        if recipe.checkout:  # an earlier step may have cloned or changed it
            values = refresh_checkout(recipe, values, state.answers)
            state.params.update({k: v for k, v in values.items() if k in recipe.params})
        # Judged now, just before the step: an earlier step may have made or removed what
        # its done_if looks at.
        item = planned(recipe, item.index, values, state, start, across=across is not None)
        if item.action == "skip":
            if saved.status not in st.FINISHED:
                saved.status, saved.reason = st.SKIPPED, item.reason
            state.save()
            listener.step_skipped(item.index, total, step, item.reason)
            continue
        blocked = [n for n in step.needs if state.step(n).status not in st.FINISHED]
        if blocked:  # stays pending, so a resume after a fix runs it
            saved.status, saved.reason = st.PENDING, f"needs {', '.join(blocked)}"
            state.save()
            listener.step_skipped(item.index, total, step, saved.reason)
            continue
        if across and step.where in ("every-host", "all-hosts"):
            outcome = across.run_everywhere(
                step, item.index, total, state, base_env, listener, runner
            )
        else:
            outcome = _run_step(step, item.index, total, state, values, base_env, listener, runner)
        if outcome.cancelled:
            raise Cancelled(step.id, stopped=outcome.stopped)
        if not outcome.ok:
            all_ok = False
            if not step.optional:  # an optional step's failure is reported; the run goes on
                break
    return all_ok


def _run_step(
    step: Step,
    index: int,
    total: int,
    state: st.RunState,
    values: dict[str, Any],
    base_env: dict[str, str],
    listener: Listener,
    runner: StepRunner,
) -> Outcome:
    saved = state.step(step.id)
    env = dict(base_env)
    for name, value in step.env.items():
        env[name] = expand_vars(render(value, values, quote=False), env)
    # Forward the step's own variables too, so remote ranks see what local ones see.
    values = {**values, "mpi_env": mpi_forward_flags(values.get("mpi_flavor", ""), env)}
    try:
        command, error = render(step.script(values), values, quote=True), ""
    except NoCommand as exc:
        command, error = "", str(exc)
    log = state.folder / f"{index + 1:02d}-{step.id}.log"
    saved.status, saved.command, saved.log = st.RUNNING, command, str(log)
    saved.started, saved.finished, saved.exit_code, saved.reason = st.now(), None, None, ""
    saved.results = {}
    state.save()
    listener.step_started(index, total, step, command)
    parser = PARSERS[step.parse]() if step.parse else None

    def on_lines(texts: list[str]) -> None:
        if parser:
            parser.feed(texts)
        listener.lines(texts)

    cwd = step_cwd(step, values)
    if cwd and not os.path.isdir(cwd) and not error:
        error = f"working folder {cwd} does not exist"
    if error:
        outcome = Outcome(None, 0.0, error=error)
        with open(log, "w", encoding="utf-8", opener=private_file) as f:
            f.write(error + "\n")
    else:
        outcome = runner.run(
            command, cwd=cwd, env=env, timeout=step.timeout, log_path=log, on_lines=on_lines
        )
    saved.exit_code = outcome.exit_code
    saved.finished = st.now()
    saved.duration_s = round(outcome.duration_s, 3)
    saved.results = parser.results() if parser else {}
    if outcome.ok:
        saved.status = st.DONE
    elif outcome.cancelled:
        saved.status, saved.reason = st.CANCELLED, "cancelled by the user"
    else:
        saved.status = st.FAILED
        saved.reason = outcome.error or (
            f"timed out after {step.timeout:g} s"
            if outcome.timed_out
            else signal_words(outcome.exit_code) or f"exit code {outcome.exit_code}"
        )
    state.save()
    listener.step_finished(step, saved, outcome)
    return outcome


def expand_vars(text: str, env: dict[str, str]) -> str:
    """$NAME and ${NAME} from the step's environment (unset: empty), as a shell would."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), text)


def leftover_processes(run_id: str) -> list[int]:
    """Processes still running from an earlier wizard of this run (killed with SIGKILL, so
    it could not stop its step): they carry WIZARD_RUN_ID in their environment."""
    import psutil

    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get("WIZARD_RUN_ID") == run_id:
                found.append(process.pid)
        except (psutil.Error, OSError):  # gone, or another user's
            continue
    return found


def stop_leftovers(run_id: str) -> list[int]:
    import psutil

    pids = leftover_processes(run_id)
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    return pids
