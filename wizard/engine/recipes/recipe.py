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
RECIPE_ID = STEP_ID  # it names the run's folder in runs/: never a path
_MAKE = re.compile(r"(?<![\w./-])make\s")  # make run as a command (not cmake, not a path)
# What a value may not hold where make reads it: make expands $( and ${ (a `$(shell ...)`
# runs), and hands variables unquoted to the shells of its recipes, which run ; | ` $(.
MAKE_UNSAFE = re.compile(r"[$`;&|<>()\\\"'\n\r]")
PARAM_KINDS = ("str", "int", "path", "args")
# Parameters the engine fills itself.
BUILTINS = (
    "nproc", "build_jobs", "mpi_env", "mpi_flavor", "mpi_hosts", "ranks", "run_dir", "steps_dir",
    "nnodes", "node_rank", "master_addr", "master_port", "hostfile_lines",
)  # fmt: skip
# Where a step runs in a run across hosts (on one host, all run here).
WHERE = ("here", "every-host", "all-hosts", "single-host")

RECIPE_KEYS = {
    "id", "title", "description", "requires", "after", "shared", "checkout", "params", "steps",
}  # fmt: skip
CHECKOUT_KEYS = {"reader", "path"}
PARAM_KEYS = {"default", "fact", "run", "help", "kind", "all"}
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
    "each",
    "by",
}
# `when: ITEM in PARAM`: the step runs when the list PARAM holds ITEM (or `all`).
WHEN_IN = re.compile(r"(\S+) in ([A-Za-z_][A-Za-z0-9_]*)")
ITEM = re.compile(r"\{\{\s*item\s*\}\}")
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
    all: str | None = None  # the word `all` in this list stands for that parameter's list


@dataclass(frozen=True)
class DoneIf:
    exists: tuple[str, ...] = ()
    newer: str | None = None
    than: tuple[str, ...] = ()
    command: str | None = None


class NoCommand(Exception):
    """A step whose command depends on a value (`by`) that has none of its variants."""


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    run: str  # the command; empty when `variants` holds one per value of the `by` parameter
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    done_if: DoneIf | None = None
    parse: str | None = None
    optional: bool = False
    needs: tuple[str, ...] = ()
    when: str | None = None  # a parameter: the step runs when it is set (or holds when_item)
    when_item: str | None = None  # `when: ITEM in PARAM`
    where: str = "here"
    by: str | None = None
    variants: dict[str, str] = field(default_factory=dict)

    def script(self, values: dict[str, Any]) -> str:
        """The command for these values, unfilled: `run`, or the variant that `by` picks."""
        if not self.by:
            return self.run
        value = str(values.get(self.by, ""))
        if value in self.variants:
            return self.variants[value]
        if not value:  # a value read from a checkout that is not there yet
            raise NoCommand(
                f"step {self.id!r} picks its command by {self.by}, which has no value yet "
                "(a checkout's is read once it exists)"
            )
        known = ", ".join(self.variants)
        raise NoCommand(
            f"step {self.id!r} has no command for {self.by}={value or '(empty)'} "
            f"(it has commands for {known})"
        )

    @property
    def make_params(self) -> set[str]:
        """The parameters whose values reach make: those on a line that runs make, and,
        in a step that runs make, those in its environment (make reads it too)."""
        scripts = [self.run, *self.variants.values()]
        lines = [ln for s in scripts for ln in s.replace("\\\n", " ").splitlines()]
        on_make = [line for line in lines if _MAKE.search(line)]
        if not on_make:
            return set()
        words = [*on_make, *self.env.values()]
        return {name for text in words for name in PLACEHOLDER.findall(text)}


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
    # (reader, path): facts `checkout.*` read from a source tree before the plan and before
    # each step, so the steps follow what the checkout has, also once a step has cloned it.
    checkout: tuple[str, str] | None = None

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
    except yaml.YAMLError as exc:  # the reader's: a character YAML does not allow
        raise RecipeError(str(path), None, f"invalid YAML: {exc}") from None
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
        if not RECIPE_ID.fullmatch(recipe_id):
            raise self.fail(
                data, f"recipe id {recipe_id!r}: use lowercase letters, digits and -", "id"
            )
        requires = data.get("requires", [])
        if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
            raise self.fail(data, "'requires' must be a list of check ids", "requires")
        after = data.get("after", [])
        if not isinstance(after, list) or not all(isinstance(r, str) for r in after):
            raise self.fail(data, "'after' must be a list of recipe ids", "after")
        if bad := [a for a in after if not RECIPE_ID.fullmatch(a)]:
            raise self.fail(data, f"'after' names {bad[0]!r}, which is not a recipe id", "after")
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
            for one in self.each(entry):
                steps.append(self.step(one, params, steps))
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
            checkout=self.checkout(data, params),
        )

    def checkout(self, data: _Lines, params: dict[str, Param]) -> tuple[str, str] | None:
        spec = data.get("checkout")
        if spec is None:
            return None
        if not isinstance(spec, _Lines):
            raise self.fail(data, "'checkout' must be a mapping of reader and path", "checkout")
        self.keys(spec, CHECKOUT_KEYS, "'checkout'")
        from wizard.engine.recipes.checkout import READERS

        reader = self.text(spec, "reader", "'checkout'")
        path = self.text(spec, "path", "'checkout'")
        assert reader is not None and path is not None
        if reader not in READERS:
            raise self.fail(
                spec, f"unknown checkout reader {reader!r}; known: {', '.join(READERS)}", "reader"
            )
        for name in PLACEHOLDER.findall(path):
            if name not in params:
                raise self.fail(spec, f"'checkout' uses {{{{ {name} }}}}, not a parameter", "path")
        return reader, path

    def each(self, entry: Any) -> list[Any]:
        """A step with `each: [a, b]` stands for one step per item, `{{ item }}` filled in."""
        if not isinstance(entry, _Lines) or "each" not in entry:
            return [entry]
        items = entry["each"]
        if not isinstance(items, list) or not items:
            raise self.fail(entry, "'each' must be a non-empty list of words", "each")
        for item in items:
            if not isinstance(item, str) or not STEP_ID.fullmatch(item):
                raise self.fail(
                    entry, f"'each': {item!r} is not a word of lowercase letters, digits, -", "each"
                )
        return [_with_item(entry, item) for item in items]

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
                spec.get("all"),
            )
        for param in params.values():
            if param.all is not None and (param.all not in params or param.kind != "args"):
                raise self.fail(
                    raw,
                    f"parameter {param.name!r}: 'all' names another parameter, and "
                    "the parameter is of kind args",
                    param.name,
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
        by = entry.get("by")
        variants: dict[str, str] = {}
        if by is not None:
            if by not in params:
                raise self.fail(entry, f"step {step_id!r}: 'by' must name a parameter", "by")
            run = entry.get("run")
            if not isinstance(run, dict) or not run:
                raise self.fail(
                    entry,
                    f"step {step_id!r}: with 'by', 'run' maps each value of {by!r} to a command",
                    "run" if "run" in entry else None,
                )
            for value, command in run.items():
                variants[str(value)] = self.command(entry, step_id, command)
            script = ""
        else:
            script = self.command(entry, step_id, entry.get("run"))
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
            from wizard.engine.recipes.parsers import PARSERS

            if not isinstance(parse, str) or parse not in PARSERS:
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
        when, when_item = entry.get("when"), None
        if isinstance(when, str) and (member := WHEN_IN.fullmatch(when)):
            when_item, when = member.groups()
        if when is not None and when not in params:
            raise self.fail(
                entry, f"step {step_id!r}: 'when' must name a parameter (or ITEM in PARAM)", "when"
            )
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
            when_item=when_item,
            where=where,
            by=by,
            variants=variants,
        )
        self.placeholders(entry, step, params)
        return step

    def command(self, entry: _Lines, step_id: str, run: Any) -> str:
        if isinstance(run, list) and run and all(isinstance(r, str) for r in run):
            return "\n".join(run)
        if isinstance(run, str) and run.strip():
            return run
        raise self.fail(
            entry,
            f"step {step_id!r}: 'run' must be a command or a list of commands",
            "run" if "run" in entry else None,
        )

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
        texts = [step.run, *step.variants.values(), step.cwd or "", *step.env.values()]
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


def _with_item(entry: _Lines, item: str) -> _Lines:
    """A copy of a step mapping with `{{ item }}` filled in every text, lines kept."""

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return ITEM.sub(item, value)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, _Lines):  # every YAML mapping loads as one
            copy = _Lines({fill(k): fill(v) for k, v in value.items()})
            copy.line, copy.lines = value.line, {fill(k): n for k, n in value.lines.items()}
            return copy
        return value

    step = fill(entry)
    del step["each"]
    return step


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
