"""The loaders of files a user may be handed (snapshots, hostfiles, recipes), fed arbitrary
and near-valid input: each either loads it or raises its own clear error, in bounded time
and memory. Never another exception: that would reach the user as "internal error"."""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s

from wizard.engine.hosts.hostlist import HostListError, read_hostfile
from wizard.engine.recipes.recipe import RecipeError
from wizard.engine.recipes.recipe import load as load_recipe
from wizard.host.base import KINDS
from wizard.host.snapshot import SnapshotError, load_snapshot

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # time is bounded below, per example, with memory
MAX_SECONDS, MAX_BYTES = 2.0, 64 * 2**20

scalars = s.one_of(
    s.none(), s.booleans(), s.integers(), s.floats(allow_nan=False), s.text(max_size=40)
)
values = s.recursive(
    scalars,
    lambda inner: s.one_of(
        s.lists(inner, max_size=5), s.dictionaries(s.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)


def bounded(load: Callable[[Path], Any], text: str, errors: tuple[type[Exception], ...]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        tracemalloc.start()
        started = time.monotonic()
        try:
            load(path)
        except errors as exc:
            assert str(exc) and "Traceback" not in str(exc)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert time.monotonic() - started < MAX_SECONDS and peak < MAX_BYTES


def dumped(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True)


# -- snapshots -------------------------------------------------------------------------------

observations = s.dictionaries(
    s.sampled_from([*KINDS, "other"]), s.one_of(values, s.dictionaries(s.text(max_size=20), values))
)
snapshots = s.fixed_dictionaries(
    {
        "wizard_snapshot": s.one_of(s.just(1), values),
        "observations": s.one_of(observations, values),
    },
    optional={"host": values, "note": values, "checks": values, "recorded_at": values},
)


@FUZZ
@given(snapshots)
def test_snapshot_like_data(data: dict[str, Any]) -> None:
    bounded(load_snapshot, dumped(data), (SnapshotError,))


@FUZZ
@given(s.text(max_size=400))
def test_snapshot_text(text: str) -> None:
    bounded(load_snapshot, text, (SnapshotError,))


# -- hostfiles -------------------------------------------------------------------------------

hostfile_lines = s.one_of(
    s.text(max_size=60),
    s.builds(
        lambda user, name, port, slots: f"{user}{name}{port}{slots}",
        s.sampled_from(["", "bob@", "-x@", "@"]),
        s.sampled_from(["node1", "-Fevil", "[::1]", "[zz::]", "a b", "", "x" * 300]),
        s.sampled_from(["", ":22", ":0", ":99999", ":x"]),
        s.sampled_from(["", " slots=2", " slots=0", " slots=-1", " max_slots=4", " slots="]),
    ),
)


@FUZZ
@given(s.lists(hostfile_lines, max_size=8))
def test_hostfiles(lines: list[str]) -> None:
    bounded(read_hostfile, "\n".join(lines) + "\n", (HostListError,))


# -- recipes ---------------------------------------------------------------------------------

steps = s.lists(
    s.fixed_dictionaries(
        {"id": s.one_of(s.sampled_from(["one", "two", "../x", "A"]), values)},
        optional={
            "run": s.one_of(s.just("make X={{ p }}"), values),
            "env": values,
            "timeout": values,
            "done_if": values,
            "needs": values,
            "when": values,
            "where": values,
            "parse": values,
            "cwd": values,
        },
    ),
    max_size=4,
)
recipes = s.fixed_dictionaries(
    {"id": s.one_of(s.just("fuzz"), values), "steps": s.one_of(steps, values)},
    optional={
        "title": values,
        "params": s.one_of(s.dictionaries(s.sampled_from(["p", "q"]), values), values),
        "requires": values,
        "after": values,
        "shared": values,
    },
)


@FUZZ
@given(recipes)
def test_recipe_like_data(data: dict[str, Any]) -> None:
    bounded(load_recipe, dumped(data), (RecipeError,))


@FUZZ
@given(s.text(max_size=400))
def test_recipe_text(text: str) -> None:
    bounded(load_recipe, text, (RecipeError,))
