"""Recipes: what a target's build and tests are, as YAML files under steps/.

A recipe names the checks it requires, its parameters (filled from doctor facts, saved
answers, `--set key=value` and defaults) and ordered steps. Loading validates everything and
reports `file:line: what is wrong`. The schema is documented in steps/README.md.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import yaml

from wizard.paths import data_dir, recipe_ids

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_PLACEHOLDER_AND_SPACE = re.compile(PLACEHOLDER.pattern + "( ?)")
STEP_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
PARAM_KINDS = ("str", "int", "path", "args")
# Parameters the engine fills itself.
BUILTINS = (
    "nproc", "build_jobs", "mpi_env", "mpi_flavor", "mpi_hosts", "ranks", "run_dir", "steps_dir",
    "nnodes", "node_rank", "master_addr", "master_port", "hostfile_lines",
)  # fmt: skip
# Where a step runs in a run across hosts (on one host, all run here).
WHERE = ("here", "every-host", "all-hosts", "single-host")

RECIPE_KEYS = {"id", "title", "description", "requires", "after", "shared", "params", "steps"}
PARAM_KEYS = {"default", "fact", "run", "help", "kind"}
RUN_VALUE = re.compile(r"([a-z0-9][a-z0-9-]*)\.([A-Za-z_][A-Za-z0-9_]*)")
STEP_KEYS = {
    "id",
    "title",
    "run",
    "cwd",
    "env",
    "timeout",
    "done_if",
    "parse",
    "optional",
    "needs",
    "when",
    "where",
}
DONE_IF_KEYS = {"exists", "newer", "than", "command"}


class RecipeError(Exception):
    def __init__(self, file: str, line: int | None, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


@dataclass(frozen=True)
class Param:
    name: str
    default: Any = None
    fact: str | None = None
    help: str = ""
    kind: str = "str"
    run: str | None = None  # "recipe.param": the value a finished run of that recipe used


@dataclass(frozen=True)
class DoneIf:
    exists: tuple[str, ...] = ()
    newer: str | None = None
    than: tuple[str, ...] = ()
    command: str | None = None


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    run: str
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    done_if: DoneIf | None = None
    parse: str | None = None
    optional: bool = False
    needs: tuple[str, ...] = ()
    when: str | None = None
    where: str = "here"


@dataclass(frozen=True)
class Recipe:
    id: str
    title: str
    path: Path
    description: str = ""
    requires: tuple[str, ...] = ()
    params: dict[str, Param] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()
    shared: str | None = None  # the folder hosts may share, so one build serves them
    after: tuple[str, ...] = ()  # recipes that must have a finished run before this one

    def index(self, step_id: str) -> int:
        for i, step in enumerate(self.steps):
            if step.id == step_id:
                return i
        hint = did_you_mean(step_id, [s.id for s in self.steps])
        raise KeyError(f"recipe {self.id} has no step {step_id!r}{hint}")


# -- finding and loading -------------------------------------------------------------------


def recipe_dir() -> Path:
    return data_dir("steps")


def find(name: str) -> Path:
    """A recipe by id (a file shipped in steps/) or by path."""
    path = Path(name).expanduser()
    if path.suffix in (".yaml", ".yml") or "/" in name:
        if not path.is_file():
            raise RecipeError(name, None, "no such recipe file")
        return path
    shipped = recipe_dir() / f"{name}.yaml"
    if not shipped.is_file():
        hint = did_you_mean(name, recipe_ids())
        raise RecipeError(
            name, None, f"no recipe named {name!r}{hint}; available: {', '.join(recipe_ids())}"
        )
    return shipped


def load(name: str) -> Recipe:
    path = find(name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(str(path), None, f"cannot read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise RecipeError(str(path), line, f"invalid YAML: {exc.problem}") from None
    return _Validator(str(path)).recipe(data, path)


class _Lines(dict):  # type: ignore[type-arg]
    """A mapping that remembers the line of each key."""

    line: int = 0
    lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    pass


def _mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Lines:
    loader.flatten_mapping(node)
    result = _Lines()
    result.line = node.start_mark.line + 1
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


# -- validation ----------------------------------------------------------------------------


class _Validator:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: Any, message: str, key: str | None = None) -> RecipeError:
        line = None
        if isinstance(where, _Lines):
            line = where.lines.get(key, where.line) if key else where.line
        return RecipeError(self.file, line, message)

    def keys(self, mapping: _Lines, allowed: set[str], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = did_you_mean(str(key), sorted(allowed))
                raise self.fail(mapping, f"unknown key {key!r} in {what}{hint}", key)

    def text(self, mapping: _Lines, key: str, what: str, required: bool = True) -> str | None:
        if key not in mapping:
            if required:
                raise self.fail(mapping, f"{what} needs {key!r}")
            return None
        value = mapping[key]
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise self.fail(mapping, f"{what}: {key!r} must be a string", key)
        return str(value)

    def recipe(self, data: Any, path: Path) -> Recipe:
        if not isinstance(data, _Lines):
            raise self.fail(None, "a recipe is a mapping with id, title, params and steps")
        self.keys(data, RECIPE_KEYS, "the recipe")
        recipe_id = self.text(data, "id", "the recipe")
        assert recipe_id is not None
        requires = data.get("requires", [])
        if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
            raise self.fail(data, "'requires' must be a list of check ids", "requires")
        after = data.get("after", [])
        if not isinstance(after, list) or not all(isinstance(r, str) for r in after):
            raise self.fail(data, "'after' must be a list of recipe ids", "after")
        params = self.params(data)
        for param in params.values():
            if param.run and RUN_VALUE.fullmatch(param.run).group(1) not in after:  # type: ignore[union-attr]
                raise self.fail(
                    data["params"],
                    f"parameter {param.name!r} takes a value from a run of "
                    f"{param.run.split('.')[0]!r}, which 'after' does not name",
                    param.name,
                )
        steps_data = data.get("steps")
        if not isinstance(steps_data, list) or not steps_data:
            raise self.fail(
                data, "'steps' must be a non-empty list", "steps" if "steps" in data else None
            )
        steps: list[Step] = []
        for entry in steps_data:
            steps.append(self.step(entry, params, steps))
        return Recipe(
            id=recipe_id,
            title=self.text(data, "title", "the recipe") or recipe_id,
            path=path,
            description=self.text(data, "description", "the recipe", required=False) or "",
            requires=tuple(requires),
            params=params,
            steps=tuple(steps),
            shared=self.shared(data, params),
            after=tuple(after),
        )

    def shared(self, data: _Lines, params: dict[str, Param]) -> str | None:
        shared = self.text(data, "shared", "the recipe", required=False)
        for name in PLACEHOLDER.findall(shared or ""):
            if name not in params:
                raise self.fail(data, f"'shared' uses {{{{ {name} }}}}, not a parameter", "shared")
        return shared

    def params(self, data: _Lines) -> dict[str, Param]:
        if "params" not in data:
            return {}
        raw = data["params"]
        if not isinstance(raw, _Lines):
            raise self.fail(data, "'params' must be a mapping of name to settings", "params")
        params = {}
        for name, spec in raw.items():
            if name in BUILTINS:
                raise self.fail(raw, f"parameter {name!r} is filled by the wizard itself", name)
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
                raise self.fail(raw, f"parameter name {name!r} is not an identifier", name)
            if not isinstance(spec, _Lines):
                spec_map = _Lines({"default": spec})
                spec_map.line, spec_map.lines = raw.lines[name], {}
                spec = spec_map
            self.keys(spec, PARAM_KEYS, f"parameter {name!r}")
            kind = spec.get("kind", "str")
            if kind not in PARAM_KINDS:
                raise self.fail(
                    spec,
                    f"parameter {name!r}: kind must be one of {', '.join(PARAM_KINDS)}",
                    "kind",
                )
            run = spec.get("run")
            if run is not None and not RUN_VALUE.fullmatch(str(run)):
                raise self.fail(
                    spec, f"parameter {name!r}: 'run' is RECIPE.PARAM, not {run!r}", "run"
                )
            params[name] = Param(
                name,
                spec.get("default"),
                spec.get("fact"),
                str(spec.get("help", "")),
                kind,
                str(run) if run is not None else None,
            )
        return params

    def step(self, entry: Any, params: dict[str, Param], before: list[Step]) -> Step:
        if not isinstance(entry, _Lines):
            raise self.fail(None, f"each step must be a mapping, not {entry!r}")
        self.keys(entry, STEP_KEYS, "a step")
        step_id = self.text(entry, "id", "a step")
        assert step_id is not None
        if not STEP_ID.fullmatch(step_id):
            raise self.fail(
                entry, f"step id {step_id!r}: use lowercase letters, digits and -", "id"
            )
        if any(s.id == step_id for s in before):
            raise self.fail(entry, f"step id {step_id!r} is used twice", "id")
        run = entry.get("run")
        if isinstance(run, list) and run and all(isinstance(r, str) for r in run):
            script = "\n".join(run)
        elif isinstance(run, str) and run.strip():
            script = run
        else:
            raise self.fail(
                entry,
                f"step {step_id!r}: 'run' must be a command or a list of commands",
                "run" if "run" in entry else None,
            )
        env = entry.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, (str, int)) for v in env.values()):
            raise self.fail(entry, f"step {step_id!r}: 'env' must map names to strings", "env")
        timeout = entry.get("timeout")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise self.fail(
                entry,
                f"step {step_id!r}: 'timeout' must be a positive number of seconds",
                "timeout",
            )
        parse = entry.get("parse")
        if parse is not None:
            from wizard.engine.parsers import PARSERS

            if parse not in PARSERS:
                raise self.fail(
                    entry,
                    f"step {step_id!r}: unknown parser {parse!r}; known: {', '.join(PARSERS)}",
                    "parse",
                )
        needs = entry.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        for need in needs:
            if not any(s.id == need for s in before):
                raise self.fail(
                    entry, f"step {step_id!r} needs {need!r}, which is not an earlier step", "needs"
                )
        when = entry.get("when")
        if when is not None and when not in params:
            raise self.fail(entry, f"step {step_id!r}: 'when' must name a parameter", "when")
        where = entry.get("where", "here")
        if where not in WHERE:
            raise self.fail(
                entry, f"step {step_id!r}: 'where' must be one of {', '.join(WHERE)}", "where"
            )
        done_if = self.done_if(entry, step_id)
        step = Step(
            id=step_id,
            title=self.text(entry, "title", "a step", required=False) or step_id,
            run=script,
            cwd=self.text(entry, "cwd", "a step", required=False),
            env={str(k): str(v) for k, v in env.items()},
            timeout=float(timeout) if timeout is not None else None,
            done_if=done_if,
            parse=parse,
            optional=bool(entry.get("optional", False)),
            needs=tuple(needs),
            when=when,
            where=where,
        )
        self.placeholders(entry, step, params)
        return step

    def done_if(self, entry: _Lines, step_id: str) -> DoneIf | None:
        spec = entry.get("done_if")
        if spec is None:
            return None
        if not isinstance(spec, _Lines):
            raise self.fail(entry, f"step {step_id!r}: 'done_if' must be a mapping", "done_if")
        self.keys(spec, DONE_IF_KEYS, f"done_if of step {step_id!r}")
        listed = lambda v: (v,) if isinstance(v, str) else tuple(v or ())  # noqa: E731
        cond = DoneIf(
            listed(spec.get("exists")),
            spec.get("newer"),
            listed(spec.get("than")),
            spec.get("command"),
        )
        if not (cond.exists or cond.newer or cond.command):
            raise self.fail(spec, f"done_if of step {step_id!r} needs exists, newer or command")
        if cond.newer and not cond.than:
            raise self.fail(spec, f"done_if of step {step_id!r}: 'newer' needs 'than'", "newer")
        return cond

    def placeholders(self, entry: _Lines, step: Step, params: dict[str, Param]) -> None:
        texts = [step.run, step.cwd or "", *step.env.values()]
        if step.done_if:
            texts += [
                *step.done_if.exists,
                step.done_if.newer or "",
                *step.done_if.than,
                step.done_if.command or "",
            ]
        for text in texts:
            for name in PLACEHOLDER.findall(text):
                if name not in params and name not in BUILTINS:
                    hint = did_you_mean(name, [*params, *BUILTINS])
                    raise self.fail(
                        entry,
                        f"step {step.id!r} uses {{{{ {name} }}}}, which is not a parameter{hint}",
                    )


def did_you_mean(word: str, choices: list[str]) -> str:
    """` (did you mean 'x'?)` for the closest choice, or nothing."""
    close = get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- rendering -----------------------------------------------------------------------------


def render(text: str, values: dict[str, Any], *, quote: bool) -> str:
    """Fill {{ name }} placeholders. With `quote`, every value is shell-quoted (lists become
    several quoted words), so paths and answers never reach a shell unquoted. An empty list
    takes the space after it along (`mpirun {{ flags }} -np 2` never shows two spaces)."""

    def one(match: re.Match[str]) -> str:
        value, space = values[match.group(1)], match.group(2)
        if isinstance(value, (list, tuple)):
            if not value:
                return ""
            words = (shlex.quote(str(v)) for v in value) if quote else map(str, value)
            return " ".join(words) + space
        return (shlex.quote(str(value)) if quote else str(value)) + space

    filled = _PLACEHOLDER_AND_SPACE.sub(one, text)
    return "\n".join(line.rstrip(" ") for line in filled.split("\n")) if quote else filled
