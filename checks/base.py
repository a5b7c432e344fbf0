"""What a check is and what it returns."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from wizard.host import Host

Scalar = str | int | float | bool | None


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    CRASH = "crash"  # the check raised: a bug in the wizard, not a finding about the host


@dataclass
class Fix:
    """A titled list of exact commands that would resolve a finding.

    `manual` fixes cannot be applied from here (a container's flags are set where it is
    started); they are shown as advice.
    """

    title: str
    commands: list[str]
    needs_root: bool = False
    changes: str = ""
    manual: bool = False
    home: str = ""  # the HOME a rootless fix installs under; it must be a writable folder

    @property
    def tags(self) -> list[str]:
        return [t for t, on in (("needs root", self.needs_root), ("manual", self.manual)) if on]

    @property
    def label(self) -> str:
        """The title, with its tags: "Install X (needs root)"."""
        return f"{self.title} ({', '.join(self.tags)})" if self.tags else self.title

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "commands": list(self.commands),
            "needs_root": self.needs_root,
            "changes": self.changes,
            "manual": self.manual,
            "home": self.home,
        }


@dataclass
class Finding:
    id: str
    title: str
    status: Status
    summary: str
    details: list[str] = field(default_factory=list)
    facts: dict[str, Scalar] = field(default_factory=dict)
    fixes: list[Fix] = field(default_factory=list)
    traceback: str | None = None  # a crashed check's, for `-v`, `--json` and bug reports

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "details": list(self.details),
            "facts": dict(self.facts),
            "fixes": [fix.to_dict() for fix in self.fixes],
            "traceback": self.traceback,
        }


@dataclass
class Context:
    """What a check gets: the host, the target's vendor, and its dependencies' findings."""

    host: Host
    check_id: str
    title: str
    vendor_of: Callable[[], str] = lambda: "nvidia"
    deep: bool = False
    deps: dict[str, Future[Finding]] = field(default_factory=dict)
    # The facts asked for that no dependency had: the doctor tells, in tests, when another
    # check learned one (a dependency the check forgot to declare).
    missed: set[str] = field(default_factory=set)

    @property
    def vendor(self) -> str:
        """The target's vendor key. Asked lazily: resolving the default target waits on the
        GPU probes, and only the checks that need it should wait."""
        return self.vendor_of()

    def finding(self, status: Status, summary: str, **kwargs: Any) -> Finding:
        return Finding(self.check_id, self.title, status, summary, **kwargs)

    def ok(self, summary: str, **kwargs: Any) -> Finding:
        return self.finding(Status.OK, summary, **kwargs)

    def warn(self, summary: str, **kwargs: Any) -> Finding:
        return self.finding(Status.WARN, summary, **kwargs)

    def fail(self, summary: str, **kwargs: Any) -> Finding:
        return self.finding(Status.FAIL, summary, **kwargs)

    def skip(self, summary: str, **kwargs: Any) -> Finding:
        return self.finding(Status.SKIP, summary, **kwargs)

    def fact(self, name: str, default: Any = None) -> Any:
        """A fact learned by one of the checks this one runs after.

        Waits for those checks only now, so a check probes in parallel with its
        dependencies and blocks only when it needs what they learned."""
        for future in self.deps.values():
            finding = future.result()
            if name in finding.facts:
                return finding.facts[name]
        self.missed.add(name)
        return default


CheckFunc = Callable[[Context], Finding]


class Group(str, Enum):
    """Where a check is shown, in this order, by the app's tree and the doctor's table."""

    SYSTEM = "System"
    ACCELERATOR = "Accelerator"
    COMMUNICATION = "Communication"
    TESTS = "Tests"


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    group: Group
    func: CheckFunc
    after: tuple[str, ...] = ()


REGISTRY: dict[str, Check] = {}


def check(
    id: str, title: str, group: Group, after: tuple[str, ...] = ()
) -> Callable[[CheckFunc], Check]:
    """Register a check, shown in `group`. `after` names the checks whose findings it reads."""

    def register(func: CheckFunc) -> Check:
        entry = Check(id, title, group, func, after)
        REGISTRY[id] = entry
        return entry

    return register


def parallel(func: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """func over items at once, in threads: probes spend their time waiting on processes."""
    from concurrent.futures import ThreadPoolExecutor

    if len(items) < 2:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(func, items))
