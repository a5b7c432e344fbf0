"""The Host layer: real processes, timeouts, memoising, recording and replay."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from wizard.host import LocalHost, SnapshotError, load_snapshot, write_snapshot
from wizard.host.base import is_secret_name


def test_run_captures_output_and_exit_code() -> None:
    host = LocalHost()
    result = host.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr, result.error) == (
        3,
        "out\n",
        "err\n",
        None,
    )
    assert not result.ok


def test_missing_program_is_an_error_not_an_exception() -> None:
    result = LocalHost().run(["no-such-tool-here", "--version"])
    assert result.returncode is None
    assert result.error == "no-such-tool-here: command not found"


def test_hung_command_is_killed_with_its_children_and_says_so(tmp_path: Path) -> None:
    marker = tmp_path / "child-alive"
    script = f"(sleep 2; touch {marker}) & sleep 30"
    started = time.perf_counter()
    result = LocalHost().run(["sh", "-c", script], timeout=0.5)
    assert time.perf_counter() - started < 5
    assert result.error == "sh did not answer within 0.5 s"
    time.sleep(2.5)
    assert not marker.exists(), "the timed-out command's background child survived"


def test_concurrent_questions_share_one_probe(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    host = LocalHost()
    argv = ["sh", "-c", f"echo x >> {counter}; sleep 0.3"]
    threads = [threading.Thread(target=host.run, args=(argv,)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.read_text() == "x\n"


def test_unreadable_paths_answer_none(tmp_path: Path) -> None:
    host = LocalHost()
    assert host.read_text(str(tmp_path / "missing")) is None
    assert host.read_text(str(tmp_path)) is None  # a directory
    assert host.path_kind(str(tmp_path)) == "dir"
    assert host.path_kind(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("HF_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("DB_PASSWORD", True),
        ("SSH_AUTH_SOCK", True),
        ("CUDA_HOME", False),
        ("PATH", False),
        ("MPI_HOME", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_secrets_never_reach_a_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIZARD_TEST_API_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("CUDA_HOME", "/opt/cuda-test")
    host = LocalHost()
    assert host.getenv("WIZARD_TEST_API_TOKEN") == "s3cr3t-value"  # the check still sees it
    assert host.getenv("CUDA_HOME") == "/opt/cuda-test"
    path = write_snapshot(host, tmp_path / "snap.yaml")
    text = path.read_text()
    assert "s3cr3t-value" not in text and "WIZARD_TEST_API_TOKEN" not in text
    replay = load_snapshot(path)
    assert replay.getenv("CUDA_HOME") == "/opt/cuda-test"
    assert replay.getenv("WIZARD_TEST_API_TOKEN") is None


def test_variable_names_are_listed_and_a_credentials_name_is_not_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAGCX_WIZARD_TEST_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("FLAGCX_WIZARD_TEST_DEBUG", "INFO")
    host = LocalHost()
    names = host.env_names("FLAGCX_WIZARD_TEST_")
    assert names == ["FLAGCX_WIZARD_TEST_DEBUG", "FLAGCX_WIZARD_TEST_TOKEN"]
    host.getenv("FLAGCX_WIZARD_TEST_DEBUG")
    text = write_snapshot(host, tmp_path / "snap.yaml").read_text()
    assert "TOKEN" not in text and "s3cr3t" not in text
    replay = load_snapshot(tmp_path / "snap.yaml")
    assert replay.env_names("FLAGCX_WIZARD_TEST_") == ["FLAGCX_WIZARD_TEST_DEBUG"]


def test_replay_answers_what_was_recorded_and_lists_misses(tmp_path: Path) -> None:
    host = LocalHost()
    host.run(["sh", "-c", "echo hello"])
    host.read_text("/etc/os-release")
    replay = load_snapshot(write_snapshot(host, tmp_path / "s.yaml"))
    assert replay.run(["sh", "-c", "echo hello"]).stdout == "hello\n"
    assert replay.read_text("/etc/os-release") == host.read_text("/etc/os-release")
    assert replay.misses == []
    missing = replay.run(["nvcc", "--version"])
    assert missing.error and "not recorded" in missing.error
    assert replay.misses == [("commands", "nvcc --version")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "not a wizard snapshot"),
        ("a: [", "not valid YAML"),
        ("wizard_snapshot: 99\nobservations: {}", "format 99"),
        ("wizard_snapshot: 1\nobservations: {bogus: {}}", "'observations' must be a table of"),
    ],
)
def test_bad_snapshot_files_give_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(SnapshotError, match=message):
        load_snapshot(path)


def test_snapshot_write_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "s.yaml"
    target.write_text("previous")
    host = LocalHost()
    host.observations["files"]["/x"] = object()  # cannot be dumped
    with pytest.raises(Exception):  # noqa: B017 - yaml's representer error
        write_snapshot(host, target)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["s.yaml"]
