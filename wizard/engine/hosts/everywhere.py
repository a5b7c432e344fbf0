"""One step on several hosts at once (a run across hosts), with live lines prefixed by the
host and each host's state saved. `every-host` steps (builds) run once per copy of the
recipe's shared folder, and a builder that finished earlier in the run is not run again on
resume; `all-hosts` steps (torchrun's nodes) run on every host together, each with its
node_rank, and all again on resume, since one node cannot rejoin the others alone."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from wizard.engine.hosts.across import HERE, Builder, Cluster
from wizard.engine.recipes import state as st
from wizard.engine.recipes.recipe import DoneIf, Recipe, Step, render
from wizard.engine.recipes.run import Listener, done_reason, expand_vars, step_cwd
from wizard.engine.recipes.runner import Outcome, StepRunner, signal_words


class Everywhere:
    def __init__(
        self,
        recipe: Recipe,
        cluster: Cluster,
        values_for: Callable[[Builder], dict[str, Any]],
        runner: StepRunner,
    ) -> None:
        self.recipe, self.cluster, self.values_for, self.runner = (
            recipe,
            cluster,
            values_for,
            runner,
        )
        self._lock = threading.Lock()

    def run(
        self,
        step: Step,
        index: int,
        total: int,
        state: st.RunState,
        base_env: dict[str, str],
        listener: Listener,
    ) -> Outcome:
        saved = state.step(step.id)
        together = step.where == "all-hosts"
        shared = None
        if self.recipe.shared and not together:
            here = self.values_for(Builder(HERE, None, []))
            shared = render(self.recipe.shared, here, quote=False)
        if together:
            builders = self.cluster.every_host()
            saved.hosts = {}
        else:
            builders = self.cluster.builders(
                shared, lambda h: str(h.facts.get("target.make_flag", ""))
            )
        jobs: list[tuple[Builder, str, str | None, dict[str, str]]] = []
        notes: list[str] = []
        shown: list[str] = []  # each builder's command as it runs there, not its ssh wrapping
        for rank, builder in enumerate(builders):
            values = self.values_for(builder)
            if together:
                values = {**values, "node_rank": rank}
            earlier = saved.hosts.get(builder.label, {})
            if earlier.get("status") in st.FINISHED:
                notes.append(f"[{builder.label}] {earlier['status']} earlier in this run")
                continue
            if not together and (reason := self._done(step, builder, values)):
                saved.hosts[builder.label] = {"status": st.SKIPPED, "reason": reason}
                notes.append(f"[{builder.label}] already done: {reason}")
                continue
            jobs.append((builder, *self._command(step, builder, values, base_env, state.run_id)))
            shown.append(f"[{builder.label}] {render(step.script(values), values, quote=True)}")
        saved.status, saved.started, saved.finished = st.RUNNING, st.now(), None
        saved.exit_code, saved.reason, saved.results = None, "", {}
        saved.command = "\n".join(shown)
        state.save()
        listener.step_started(index, total, step, _who_builds(builders, shared) + saved.command)
        if notes:
            listener.lines(notes)
        outcomes = self._run_all(step, index, state, jobs, listener, together=together)
        return self._finish(step, state, saved, outcomes, listener)

    # -- one builder ------------------------------------------------------------------------

    def _done(self, step: Step, builder: Builder, values: dict[str, Any]) -> str | None:
        if builder.host is None:
            return done_reason(step, values)
        test = _done_if_test(step.done_if, values, step_cwd(step, values))
        if test is None:
            return None
        script, holds = test
        code, _ = self.cluster.run_on(builder.host, script, timeout=60)
        return f"{holds} there" if code == 0 else None

    def _command(
        self,
        step: Step,
        builder: Builder,
        values: dict[str, Any],
        base_env: dict[str, str],
        run_id: str,
    ) -> tuple[str, str | None, dict[str, str]]:
        """The local command, its working folder and environment for one builder."""
        script = render(step.script(values), values, quote=True)
        cwd = step_cwd(step, values)
        if builder.host is None:
            env = dict(base_env)
            for name, value in step.env.items():
                env[name] = expand_vars(render(value, values, quote=False), env)
            return script, cwd, env
        remote_env = {k: render(v, values, quote=False) for k, v in step.env.items()}
        command = self.cluster.remote_command(
            builder.host, script, cwd=cwd, env=remote_env, run_id=run_id
        )
        return command, None, dict(base_env)

    def _run_all(
        self,
        step: Step,
        index: int,
        state: st.RunState,
        jobs: list[tuple[Builder, str, str | None, dict[str, str]]],
        listener: Listener,
        *,
        together: bool,
    ) -> dict[str, Outcome]:
        """Every job at once. Together (one job over all hosts), a host that fails stops
        the others, which would wait for it until their own timeouts."""
        outcomes: dict[str, Outcome] = {}
        saved = state.step(step.id)
        runners = {b.label: self.runner.sibling() for b, _, _, _ in jobs}

        def one(builder: Builder, command: str, cwd: str | None, env: dict[str, str]) -> None:
            label = builder.label
            suffix = "" if label == HERE else f".{_file_name(label)}"
            log = state.folder / f"{index + 1:02d}-{step.id}{suffix}.log"
            with self._lock:
                saved.hosts[label] = {"status": st.RUNNING, "log": str(log)}
                state.save()

            def lines(texts: list[str]) -> None:
                with self._lock:
                    listener.lines([f"[{label}] {t}" for t in texts])

            outcome = runners[label].run(
                command, cwd=cwd, env=env, timeout=step.timeout, log_path=log, on_lines=lines
            )
            if together and not outcome.ok and not outcome.cancelled:
                for other in runners.values():  # this step's parts, not the user's cancel
                    other.cancel()
            with self._lock:
                outcomes[label] = outcome
                saved.hosts[label] = {
                    "status": _status(outcome),
                    "exit_code": outcome.exit_code,
                    "log": str(log),
                    "reason": _reason(outcome, step),
                    "duration_s": round(outcome.duration_s, 3),
                }
                state.save()

        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            futures = [pool.submit(one, *job) for job in jobs]
            try:
                while wait(futures, timeout=0.2).not_done:  # wakes for Ctrl-C in this thread
                    pass
            except KeyboardInterrupt:
                self.runner.cancel()
                for future in futures:
                    future.exception()
            finally:
                self.runner.forget_siblings()
        return outcomes

    def _finish(
        self,
        step: Step,
        state: st.RunState,
        saved: st.StepState,
        outcomes: dict[str, Outcome],
        listener: Listener,
    ) -> Outcome:
        failed = {k: o for k, o in outcomes.items() if not o.ok and not o.cancelled}
        longest = max((o.duration_s for o in outcomes.values()), default=0.0)
        saved.finished, saved.duration_s = st.now(), round(longest, 3)
        first_log = next((h.get("log") for h in saved.hosts.values() if h.get("log")), None)
        saved.log = first_log
        if failed:
            saved.status = st.FAILED
            saved.reason = "; ".join(f"{k}: {_reason(o, step)}" for k, o in failed.items())
            label, worst = next(iter(failed.items()))
            saved.exit_code, saved.log = worst.exit_code, saved.hosts[label]["log"]
            outcome = Outcome(worst.exit_code, longest, worst.timed_out, tail=worst.tail)
            outcome.error = saved.reason
        elif any(o.cancelled for o in outcomes.values()):
            saved.status, saved.reason = st.CANCELLED, "cancelled by the user"
            said = [f"{k}: {o.stopped}" for k, o in outcomes.items() if o.stopped]
            outcome = Outcome(None, longest, cancelled=True, stopped="; ".join(said))
        else:
            saved.status, saved.exit_code = st.DONE, 0
            outcome = Outcome(0, longest)
        state.save()
        listener.step_finished(step, saved, outcome)
        return outcome


def _status(outcome: Outcome) -> str:
    if outcome.ok:
        return st.DONE
    return st.CANCELLED if outcome.cancelled else st.FAILED


def _reason(outcome: Outcome, step: Step) -> str:
    if outcome.ok:
        return ""
    if outcome.cancelled:
        return "cancelled by the user"
    if outcome.timed_out:
        return f"timed out after {step.timeout:g} s"
    if outcome.exit_code == 255:
        return "ssh failed (exit code 255)"
    return outcome.error or signal_words(outcome.exit_code) or f"exit code {outcome.exit_code}"


def _file_name(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def _who_builds(builders: list[Builder], shared: str | None) -> str:
    """One line per builder that serves more hosts than itself."""
    lines = []
    for builder in builders:
        others = [m for m in builder.members if m != builder.label]
        if builder.label == HERE:
            lines.append(f"# here, for {', '.join(builder.members)} (they share {shared})\n")
        elif others:
            lines.append(f"# {builder.label}, also for {', '.join(others)} (sharing {shared})\n")
    return "".join(lines)


def _done_if_test(
    cond: DoneIf | None, values: dict[str, Any], cwd: str | None
) -> tuple[str, str] | None:
    """A step's done_if as a shell test for a host (exit 0: done) and what it means when it
    holds, as done_reason decides here: `newer` ignores build/ and hidden folders."""
    if cond is None:
        return None
    if cond.exists:
        paths = [render(p, values, quote=False) for p in cond.exists]
        test = " && ".join(f"test -e {shlex.quote(p)}" for p in paths)
        return test, f"{', '.join(paths)} exists"
    if cond.newer:
        newest = render(cond.newer, values, quote=False)
        target = shlex.quote(newest)
        sources = " ".join(shlex.quote(render(p, values, quote=False)) for p in cond.than)
        newer = (
            f"find {sources} -mindepth 1 \\( -name build -o -name '.*' \\) -prune -o "
            f"-type f -newer {target} -print 2>/dev/null | head -n 1"
        )
        files = f"find {sources} -maxdepth 0 -type f -newer {target} 2>/dev/null"
        test = f'test -e {target} && test -z "$({newer})$({files})"'
        return test, f"{newest} is newer than its sources"
    if cond.command:
        command = render(cond.command, values, quote=True)
        return (f"cd {shlex.quote(cwd)} && {command}" if cwd else command), f"`{command}` succeeded"
    return None
