"""Hostile input: names ssh would read as options, values a shell or make would run, folders
another user could write, files that are not what they seem (issue 19)."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import ClassVar

import pytest

from tests import netns
from tests.treehost import TreeHost, recorded_nvml
from wizard.engine.doctor.diagnosis import run_doctor
from wizard.engine.hosts.across import Cluster, RunHost
from wizard.engine.hosts.doctor_all import ssh_round
from wizard.engine.hosts.hostlist import HostListError, HostSpec, parse_hosts, read_hostfile
from wizard.engine.hosts.mesh import Mesh
from wizard.engine.hosts.ssh import ssh_to
from wizard.host.snapshot import MAX_BYTES, SnapshotError, load_snapshot, write_snapshot
from wizard.host.ssh import CONNECT_TIMEOUT_S, ssh_argv

ROOT = Path(__file__).resolve().parent.parent
needs_lab = pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))


def wizard_in(folder: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    """The wizard's command line run from `folder` (where ssh's -E or -F would find files)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "wizard", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


# -- 1. a host name is never an ssh option ---------------------------------------------------


@pytest.mark.parametrize("text", ["-Epwned", "-oProxyCommand=touch x", "bob@-F", "-F@host"])
def test_a_name_that_starts_with_a_dash_is_refused(text: str) -> None:
    with pytest.raises(HostListError, match="starts with `-`"):
        parse_hosts(text)
    with pytest.raises(HostListError):
        HostSpec(text.split("@")[-1], text.split("@")[0] if "@" in text else None)


def test_every_ssh_command_ends_its_options_before_the_destination() -> None:
    spec = HostSpec("node1", "bob", 2222)
    expected = ["-p", "2222", "--", "bob@node1"]
    assert ssh_to(spec)[-4:] == expected
    host = RunHost(spec, slots=1)
    assert Cluster([host]).ssh_argv(host)[-4:] == expected
    assert Cluster([host]).ssh_argv(host, tty=True)[-4:] == expected
    assert Mesh([spec]).ssh_argv(spec)[-4:] == expected
    with pytest.raises(ValueError, match="read as an option"):
        ssh_argv("bob@-oProxyCommand=x")


def test_one_ssh_command_for_every_caller(tmp_path: Path) -> None:
    """BatchMode and one ConnectTimeout everywhere; the config file only for an ssh that
    runs here, or on a host that has the file at the same path (run here: an `ssh` on PATH
    that says what it was given)."""
    spec, config = HostSpec("node1", port=2222), tmp_path / "ssh_config"
    host = RunHost(spec, slots=1)
    here = ssh_to(spec, config=str(config))
    assert here[:3] == ["ssh", "-F", str(config)] and "BatchMode=yes" in here
    assert f"ConnectTimeout={CONNECT_TIMEOUT_S}" in here
    assert Cluster([host], ssh_config=str(config)).ssh_argv(host) == here
    assert Mesh([spec], str(config)).ssh_argv(spec) == here
    said = tmp_path / "said"
    (tmp_path / "ssh").write_text(f'#!/bin/sh\necho "$@" >> {said}\n')
    (tmp_path / "ssh").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    script = ssh_round([spec], str(config))
    for _ in ("without the file", "with it"):
        done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
        assert done.stdout == "0 ok\n", done.stderr
        config.write_text("")
    without, with_file = said.read_text().splitlines()
    assert without == shlex.join([*ssh_to(spec)[1:], "true"])
    assert with_file == shlex.join([*here[1:], "true"])


def _evil_files(folder: Path) -> Path:
    """A config that runs a command the moment ssh reads it, and a hostfile naming it."""
    marker = folder / "pwned"
    (folder / "evilcfg").write_text(f"Host *\n  ProxyCommand touch {marker}\n")
    (folder / "hostfile").write_text("-Fevilcfg slots=1\n")
    return marker


@needs_lab
@pytest.mark.parametrize("command", [["doctor"], ["hosts", "setup", "--dry-run"]])
def test_a_host_named_like_an_option_runs_nothing(tmp_path: Path, command: list[str]) -> None:
    """Against real sshd servers: the good host beside the bad one is not even tried, the
    bad one never reaches ssh (no log file -E would write, no ProxyCommand -F would run)."""
    folder = tmp_path / "lab"
    folder.mkdir()
    marker = _evil_files(tmp_path)
    with netns.Lab(folder, 1) as lab:
        ssh = ["--ssh-config", str(lab.config)]
        by_option = wizard_in(tmp_path, *command, "--hosts=node0,-Epwned", *ssh)
        by_file = wizard_in(tmp_path, *command, "--hostfile", "hostfile", *ssh)
    assert by_option.returncode == 2, by_option.stderr
    assert "'-Epwned' is not a host: it starts with `-`" in by_option.stderr
    assert by_file.returncode == 2, by_file.stderr
    assert "hostfile:1:" in by_file.stderr and "starts with `-`" in by_file.stderr
    assert "Traceback" not in by_option.stderr + by_file.stderr
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evilcfg", "hostfile", "lab"]


@needs_lab
def test_the_doctor_reaches_a_real_host_with_the_dash_dash(tmp_path: Path) -> None:
    """`--` before the destination is what ssh (and plumbum's session) still log in with."""
    folder = tmp_path / "lab"
    folder.mkdir()
    with netns.Lab(folder, 1) as lab:
        done = wizard_in(tmp_path, "doctor", "--json", "--hosts", "node0", "--ssh-config",
                         str(lab.config), timeout=180)  # fmt: skip
    assert '"reachable": true' in done.stdout, done.stderr


# -- 13. host lists: ports, IPv6, nothing given ---------------------------------------------


def test_a_hostfile_line_with_a_user_has_a_port_not_slots(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("bob@node1:2222\nnode2:4\n[fe80::1%eth0]:22 slots=2\nalice@[::1]\n")
    assert read_hostfile(path) == [
        HostSpec("node1", "bob", 2222),
        HostSpec("node2", slots=4),
        HostSpec("fe80::1%eth0", port=22, slots=2),
        HostSpec("::1", "alice"),
    ]
    assert HostSpec("::1", port=22).label == "[::1]:22"
    assert ssh_to(HostSpec("::1", port=22))[-4:] == ["-p", "22", "--", "::1"]
    with pytest.raises(HostListError):
        parse_hosts("[not:an:address]")


@pytest.mark.parametrize("command", [["doctor"], ["hosts", "setup", "--dry-run"]])
def test_an_empty_hosts_option_is_a_usage_error(tmp_path: Path, command: list[str]) -> None:
    done = wizard_in(tmp_path, *command, "--hosts", "")
    assert done.returncode == 2 and "--hosts names no host" in done.stderr, done.stderr


def test_advice_for_an_unreachable_host_is_a_command_ssh_can_parse() -> None:
    from wizard.engine.hosts.doctor_all import HostResult, unreachable_advice

    spec = HostSpec("node1", "bob", 2222)
    refused = HostResult(spec, None, "ssh: connect to host node1 port 2222: Connection refused")
    assert unreachable_advice(refused)[0].startswith("ssh -v -p 2222 bob@node1 true   #")
    denied = HostResult(spec, None, "bob@node1: Permission denied (publickey).")
    assert unreachable_advice(denied)[0].startswith("ssh-copy-id -p 2222 bob@node1   #")


# -- 2. every value in a fix command is quoted -----------------------------------------------

HOSTILE = "v;cd ..;touch pwned;#"


def shell_words(command: str) -> list[str]:
    """The words bash would see, with `;` `&&` `|` as words of their own where unquoted and a
    `#` comment dropped: a value that is quoted stays within one word."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def _hostile_machine(tmp_path: Path) -> tuple[TreeHost, str, str, str]:
    """A tree whose NCCL (only libnccl.so.2, as the wheels ship it), python3 and HOME sit at
    paths with `;`, `#` and a space; the same NCCL files exist for real at the same path, so
    a fix applied here finds them."""
    real = tmp_path / "real"
    nccl, home = f"{real}/{HOSTILE}/nccl", f"{real}/ada lovelace"
    python3 = f"{real}/{HOSTILE}/bin/python3"
    tree = TreeHost(tmp_path / "tree", env={"HOME": home, "NCCL_HOME": nccl}, nvml=recorded_nvml())
    tree.env["PATH"] = f"{os.path.dirname(python3)}:/usr/bin:/bin"
    for host_path in (tree.root / nccl.lstrip("/"), Path(nccl)):
        (host_path / "include").mkdir(parents=True)
        (host_path / "lib").mkdir()
        (host_path / "include" / "nccl.h").write_text("#define NCCL_MAJOR 2\n")
        (host_path / "lib" / "libnccl.so.2").write_text("\x7fELF")
    tree.symlink(python3, sys.executable)
    Path(home).mkdir(parents=True)
    return tree, nccl, home, str(tree.root) + python3


def test_fix_commands_quote_hostile_paths_and_apply_without_running_them(tmp_path: Path) -> None:
    tree, nccl, home, python3 = _hostile_machine(tmp_path)
    findings = {f.id: f for f in run_doctor(tree).findings}
    commands = [c for f in findings.values() for fix in f.fixes for c in fix.commands]
    hostile = [c for c in commands if HOSTILE in c or "ada lovelace" in c]
    assert len(hostile) >= 4  # NCCL's links, DeepSpeed's and cuDNN's pip installs at least
    for command in hostile:
        words = shell_words(command)
        assert ";" not in words and "&&" not in words, command
        assert any(HOSTILE in w or "ada lovelace" in w for w in words), command
    (link,) = findings["nccl.library"].fixes
    to, library = shlex.quote(f"{home}/.local/nccl"), shlex.quote(f"{nccl}/lib/libnccl.so.2")
    assert link.commands == [
        f"mkdir -p {to}/lib",
        f"ln -sfn {shlex.quote(nccl + '/include')} {to}/include",
        f"ln -sf {library} {to}/lib/libnccl.so.2",
        f"ln -sf {library} {to}/lib/libnccl.so",
    ]
    deepspeed = findings["deepspeed"].fixes[0].commands
    assert shell_words(deepspeed[0])[:4] == [python3, "-m", "pip", "install"]

    # Applied as `wizard doctor --fix` applies it (one bash -e script, from HOME): the links
    # and nothing else.
    before = {p for p in tmp_path.rglob("*")}
    done = subprocess.run(["bash", "-e", "-c", "\n".join(link.commands)], cwd=home, check=False)
    assert done.returncode == 0
    made = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")} - {
        p.relative_to(tmp_path) for p in before
    }
    local = Path("real/ada lovelace/.local")
    assert made == {
        local,
        local / "nccl",
        local / "nccl/lib",
        local / "nccl/include",
        local / "nccl/lib/libnccl.so.2",
        local / "nccl/lib/libnccl.so",
    }
    assert (tmp_path / local / "nccl/include/nccl.h").read_text() == "#define NCCL_MAJOR 2\n"
    assert not list(tmp_path.rglob("pwned")) and not Path("pwned").exists()


# -- 3. a state folder another user could write is refused; what the wizard makes is private --

TWO_STEPS = """\
id: two-steps
title: Two steps
params:
  work: {kind: path}
steps:
  - id: wait
    run: test -f {{ work }}/go
  - id: act
    run: touch {{ work }}/acted
"""


def _stopped_run(tmp_path: Path, **popen) -> tuple[Path, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A run of TWO_STEPS whose first step failed: `wizard resume` would run both."""
    recipe, work = tmp_path / "two-steps.yaml", tmp_path / "work"
    recipe.write_text(TWO_STEPS)
    work.mkdir()
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "wizard", "run", str(recipe), "--set", f"work={work}", "--yes"],
        env=env, capture_output=True, text=True, timeout=120, check=False, **popen,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    (work / "go").touch()
    return work, env


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
@pytest.mark.parametrize("how", ["owned by nobody", "writable by others", "run writable"])
def test_a_state_folder_another_user_could_write_is_refused(tmp_path: Path, how: str) -> None:
    work, env = _stopped_run(tmp_path)
    state = tmp_path / "state"
    if how == "owned by nobody":  # as /tmp/wizard-state-$(id -un) made by someone else first
        for path in (state, *state.rglob("*")):
            os.chown(path, 65534, 65534)
    elif how == "writable by others":
        (state / "wizard" / "runs").chmod(0o777)
    else:
        next((state / "wizard" / "runs").glob("two-steps-*")).chmod(0o775)
    done = wizard_in(tmp_path, "resume", "--yes", env=env)
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr
    expected = (
        "belongs to user nobody, not to you" if how == "owned by nobody" else "can be written by"
    )
    assert expected in done.stderr + done.stdout
    assert not (work / "acted").exists()


def test_under_umask_000_what_the_wizard_makes_is_private(tmp_path: Path) -> None:
    _stopped_run(tmp_path, preexec_fn=lambda: os.umask(0))
    state = tmp_path / "state"
    (run,) = (state / "wizard" / "runs").glob("two-steps-*")
    folders = [state, state / "wizard", state / "wizard" / "runs", run]
    files = [run / "state.yaml", state / "wizard" / "runs" / "latest", *run.glob("*.log")]
    assert len(files) == 3  # the failed step's log
    assert {str(p): oct(p.stat().st_mode & 0o777) for p in folders + files} == {
        **{str(p): "0o700" for p in folders},
        **{str(p): "0o600" for p in files},
    }


# -- 5. ids never name a folder outside runs/ ------------------------------------------------


@pytest.mark.parametrize("recipe_id", ["/tmp/abs", "../../evil", "a/b", "-x"])
def test_a_recipe_id_that_is_a_path_is_refused(tmp_path: Path, recipe_id: str) -> None:
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(TWO_STEPS.replace("id: two-steps", f"id: {json.dumps(recipe_id)}"))
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    done = wizard_in(tmp_path, "run", str(recipe), "--set", "work=/nonexistent", "--yes", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"recipe id {recipe_id!r}: use lowercase letters, digits and -" in done.stderr
    assert not (tmp_path / "state").exists() and not Path("/tmp/abs").exists()


@pytest.mark.parametrize("run_id", ["../../etc", "/etc", "..", "a/../../b"])
def test_a_run_id_outside_runs_is_refused(tmp_path: Path, run_id: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()  # a state.yaml where ../../ would lead: never read
    (outside / "state.yaml").write_text("wizard_run: 2\n")
    env = {"XDG_STATE_HOME": str(tmp_path / "state" / "x")}
    for command in ("resume", "status"):
        done = wizard_in(tmp_path, command, "--run", run_id, env=env)
        assert done.returncode == 1 and f"{run_id!r} is not a run id" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_state_copied_from_another_run_is_refused(tmp_path: Path) -> None:
    work, env = _stopped_run(tmp_path)
    runs = tmp_path / "state" / "wizard" / "runs"
    (run,) = runs.glob("two-steps-*")
    copy = runs / "two-steps-20000101-000000"
    copy.mkdir(mode=0o700)
    shutil.copy(run / "state.yaml", copy / "state.yaml")
    done = wizard_in(tmp_path, "resume", "--yes", "--run", copy.name, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"it is the state of run {run.name!r}, copied here" in done.stderr
    assert not (work / "acted").exists()


# -- 4. values that reach make ---------------------------------------------------------------

MAKE_RECIPE = """\
id: make-values
title: A value on make's command line
params:
  home: {}
  work: {kind: path}
steps:
  - id: build
    cwd: "{{ work }}"
    run: make HOME_DIR={{ home }}
"""


@pytest.mark.parametrize("value", ["$(shell touch pwned)", "x;touch pwned", "`touch pwned`"])
def test_a_value_make_would_run_is_refused(tmp_path: Path, value: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "Makefile").write_text("all:\n\techo -I$(HOME_DIR)/include\n")
    recipe = tmp_path / "make-values.yaml"
    recipe.write_text(MAKE_RECIPE)
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    sets = ["--set", f"home={value}", "--set", f"work={work}"]
    done = wizard_in(tmp_path, "run", str(recipe), *sets, "--yes", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"parameter 'home' is {value!r}, which reaches make in step 'build'" in done.stderr
    assert not (work / "pwned").exists()
    fine = wizard_in(tmp_path, "run", str(recipe), "--set", "home=/opt/a-b_c.d", *sets[2:],
                     "--yes", env=env)  # fmt: skip
    assert fine.returncode == 0 and "-I/opt/a-b_c.d/include" in fine.stdout, fine.stderr


def test_the_shipped_builds_name_the_values_that_reach_make() -> None:
    from wizard.engine.recipes import recipe

    flagcx = {s.id: s.make_params for s in recipe.load("flagcx").steps}
    assert {"ccl_home", "device_home", "mpi_home"} <= flagcx["build"]
    assert "mpi_extra_libs" in flagcx["perf-build"]  # through the step's environment
    nccl_tests = {s.id: s.make_params for s in recipe.load("nccl-tests").steps}
    assert {"nccl_home", "cuda_home", "mpi_home", "sm"} <= nccl_tests["build"]
    assert all(not s.make_params for s in recipe.load("googletest").steps)  # cmake is not make


# -- 6. `snapshot -o` writes to a device or pipe, never replaces it ---------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_snapshot_to_a_full_device_says_so_and_leaves_the_device(tmp_path: Path) -> None:
    full = tmp_path / "full"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # the same device as /dev/full
    done = wizard_in(tmp_path, "snapshot", "-o", str(full))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot write {full}: No space left on device" in done.stderr
    assert stat.S_ISCHR(full.lstat().st_mode) and full.lstat().st_rdev == os.makedev(1, 7)
    assert [p.name for p in tmp_path.iterdir()] == ["full"]  # no temporary file left either


def test_a_snapshot_streams_into_a_pipe(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-m", "wizard", "snapshot", "-o", str(pipe)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.append(pipe.read_text()), daemon=True)
    reader.start()  # a daemon: a wizard that replaced the pipe leaves it waiting, not the test
    _, err = writer.communicate(timeout=120)
    reader.join(10)
    assert writer.returncode == 0, err
    assert read and read[0].startswith("wizard_snapshot: 1\n") and f"to {pipe}." in err
    assert stat.S_ISFIFO(pipe.lstat().st_mode)


# -- 7. a snapshot is checked field by field, and bounded ------------------------------------

BOMB = "\n".join(
    ["wizard_snapshot: 1", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 8)}]" for i in range(1, 10)]
    + ["host: *a9", "observations: {}"]
)  # 8**10 strings once expanded: the 2 GB print


def _time_and_memory(action) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    started = time.monotonic()
    try:
        action()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return time.monotonic() - started, peak


def test_a_snapshot_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB + "\n")

    def load() -> None:
        with pytest.raises(SnapshotError, match=r"uses YAML aliases \(\*name\)"):
            load_snapshot(path)

    seconds, peak = _time_and_memory(load)
    assert seconds < 2 and peak < 20 * 2**20
    done = wizard_in(tmp_path, "doctor", "--snapshot", str(path), timeout=30)
    assert done.returncode == 2 and "uses YAML aliases" in done.stderr
    assert len(done.stdout) + len(done.stderr) < 2000


@pytest.mark.parametrize(
    ("field", "why"),
    [
        ("host: [a, b]", "'host' must be a name of at most 255 characters"),
        ("host: " + "x" * 300, "'host' must be a name of at most 255 characters"),
        ("note: {a: 1}", "'note' must be text"),
        ("checks: nope", "'checks' must be a list of check ids"),
        ("observations: {env: [1]}", "observations.env must be a table keyed by text"),
        (
            "observations: {env: {HOME: [1]}}",
            "observations.env['HOME'] must be a value, null, or a list of names",
        ),
        ("observations: {commands: {uname: {rc: one}}}", "must be a command's record"),
        ("observations: {statvfs: {/: {total: 1.5, free: 1}}}", "total and free as whole"),
        ("observations: {disks: {}}", "'observations' must be a table of commands"),
    ],
)
def test_a_snapshot_field_of_the_wrong_type_is_named(tmp_path: Path, field: str, why: str) -> None:
    path = tmp_path / "bad.yaml"
    base = {"observations": "observations: {}"}
    key = field.split(":")[0]
    lines = ["wizard_snapshot: 1", field, *(v for k, v in base.items() if k != key)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SnapshotError, match=re.escape(why)):
        load_snapshot(path)


def test_a_huge_snapshot_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.truncate(MAX_BYTES + 1)

    def load() -> None:
        with pytest.raises(SnapshotError, match="is over 32 MiB: not a snapshot"):
            load_snapshot(path)

    seconds, peak = _time_and_memory(load)
    assert seconds < 2 and peak < 2**20


def test_a_written_snapshot_holds_no_aliases(tmp_path: Path) -> None:
    from wizard.host.base import KINDS

    class Shared:  # one object seen twice, as a Host may record it
        name = "h"
        observations: ClassVar[dict] = {kind: {} for kind in KINDS}

    same = ["/a", "/b"]
    Shared.observations["globs"] = {"x*": same, "y*": same}
    path = write_snapshot(Shared(), tmp_path / "s.yaml")  # type: ignore[arg-type]
    assert "&id" not in path.read_text()
    assert load_snapshot(path).recorded["globs"] == {"x*": same, "y*": same}


# -- 11. remote output that is not UTF-8 -----------------------------------------------------


@needs_lab
def test_remote_output_that_is_not_utf8_is_read_not_a_crash(tmp_path: Path) -> None:
    """A host whose sshd greets with a Latin-1 banner (ssh prints it on stderr at every
    login), and a command that prints bytes that are not UTF-8."""
    folder = tmp_path / "lab"
    folder.mkdir()
    banner = folder / "banner"
    banner.write_bytes(b"Willkommen auf dem Rechner f\xfcr Gro\xdfes\n")
    with netns.Lab(folder, 1) as lab:
        node = lab.hosts[0]
        config = lab.sshd_config(node)
        config.write_text(config.read_text() + f"Banner {banner}\n")
        lab.start(node, rewrite=False)
        cluster = Cluster([RunHost(HostSpec("node0"), slots=1)], ssh_config=str(lab.config))
        code, out = cluster.run_on(cluster.hosts[0], "printf 'caf\\351\\n'")
        setup = wizard_in(tmp_path, "hosts", "setup", "--dry-run", "--hosts", "node0",
                          "--ssh-config", str(lab.config), timeout=180)  # fmt: skip
    assert code == 0 and "caf\ufffd" in out
    assert "Traceback" not in setup.stderr and setup.returncode in (0, 1), setup.stderr
    assert "node0" in setup.stdout


# -- 13. logins that fail: in their time, quietly, leaving nothing --------------------------


@needs_lab
def test_a_slow_login_honours_its_limit_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A host whose shell takes 20 s to start (bash reads BASH_ENV, set by sshd's SetEnv),
    with a 3 s login limit; and a host whose sshd is down. Neither leaves a folder of
    sockets behind or prints plumbum's objects."""
    from wizard.host import ssh

    monkeypatch.setattr(ssh, "LOGIN_TIMEOUT_S", 3)
    temp = Path(tempfile.mkdtemp(prefix="wzt", dir="/tmp"))  # short: ssh's ControlPath
    monkeypatch.setattr(tempfile, "mkdtemp", functools.partial(tempfile.mkdtemp, dir=temp))
    folder = tmp_path / "lab"
    folder.mkdir()
    slow = folder / "slow.sh"
    slow.write_text("sleep 20\n")
    with netns.Lab(folder, 2) as lab:
        lab.hosts[0].env = {"BASH_ENV": str(slow)}
        lab.start(lab.hosts[0])
        lab.stop(lab.hosts[1])
        started = time.monotonic()
        with pytest.raises(ssh.Unreachable, match="no answer from ssh within 3 s"):
            ssh.SshHost("node0", ssh_config=str(lab.config))
        seconds = time.monotonic() - started
        with pytest.raises(ssh.Unreachable, match="Connection refused"):
            ssh.SshHost("node1", ssh_config=str(lab.config))
    left = list(temp.iterdir())
    temp.rmdir() if not left else shutil.rmtree(temp)
    assert seconds < 8 and left == []
    assert "<" not in capfd.readouterr().err  # no repr of plumbum's objects


def test_one_50_mb_output_line_costs_linear_time(tmp_path: Path) -> None:
    from wizard.engine.recipes.runner import StepRunner
    from wizard.host import LocalHost

    seen: list[int] = []
    started = time.monotonic()
    outcome = StepRunner(LocalHost()).run(
        "head -c 50000000 /dev/zero | tr '\\0' x; echo; echo end",
        cwd=None,
        env=dict(os.environ),
        timeout=120,
        log_path=tmp_path / "step.log",
        on_lines=lambda lines: seen.extend(map(len, lines)),
    )
    seconds = time.monotonic() - started
    assert outcome.ok and seen == [50_000_000, 3]
    assert (tmp_path / "step.log").stat().st_size == 50_000_005
    assert seconds < 4, f"{seconds:.1f} s"


def test_a_run_whose_recipe_lost_steps_says_so_and_can_finish(tmp_path: Path) -> None:
    _, env = _stopped_run(tmp_path)
    recipe = tmp_path / "two-steps.yaml"
    recipe.write_text(TWO_STEPS.split("  - id: act")[0])  # the step `act` is gone
    done = wizard_in(tmp_path, "resume", "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"The recipe {recipe} no longer has the step(s) act" in done.stdout
    again = wizard_in(tmp_path, "resume", "--yes", env=env)
    assert again.returncode == 0 and "Nothing left to do" in again.stdout, again.stdout
