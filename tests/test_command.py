"""The one command runner (vbench/command.py), on real programs: sh, cat, sleep."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from vbench.command import CommandFailed, CommandNotFound, CommandTimedOut, run
from vbench.errors import VbenchError

VBENCH = Path(__file__).resolve().parents[1] / "vbench"


def test_output_exit_code_and_duration() -> None:
    r = run(["sh", "-c", "printf out; printf err >&2"], timeout_s=10)
    assert (r.stdout, r.stderr, r.exitcode) == (b"out", b"err", 0)
    assert r.argv == ("sh", "-c", "printf out; printf err >&2")
    assert 0 < r.duration_s < 10


def test_input_env_and_cwd(tmp_path: Path) -> None:
    assert run(["cat"], input=b"\x00bytes\xff", timeout_s=10).stdout == b"\x00bytes\xff"
    r = run(
        ["sh", "-c", 'echo "$VB_X"; pwd'],
        env={"VB_X": "42", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        timeout_s=10,
    )
    assert r.out.split() == ["42", str(tmp_path)]


def test_stdin_is_empty_without_input() -> None:
    assert run(["cat"], timeout_s=10).stdout == b""  # would hang on an inherited terminal


def test_a_non_zero_exit_is_one_line_with_the_last_stderr_lines() -> None:
    script = "echo noise; for i in 1 2 3 4 5; do echo line$i >&2; done; exit 3"
    with pytest.raises(CommandFailed) as failed:
        run(["sh", "-c", script], timeout_s=10)
    exc = failed.value
    assert isinstance(exc, VbenchError)  # the CLI prints it as one line
    assert exc.exitcode == 3 and exc.argv == ["sh", "-c", script]
    assert str(exc) == f"`sh -c {script}` exited with 3: line3 | line4 | line5"
    assert "\n" not in str(exc) and "line1" in exc.output_tail


def test_check_false_returns_the_failure() -> None:
    r = run(["sh", "-c", "echo why >&2; exit 2"], timeout_s=10, check=False)
    assert (r.exitcode, r.err) == (2, "why\n")


def test_a_timeout_kills_the_process() -> None:
    start = time.monotonic()
    with pytest.raises(CommandTimedOut) as failed:
        run(["sleep", "30"], timeout_s=0.3)
    assert time.monotonic() - start < 5
    assert str(failed.value) == "`sleep 30` did not finish within 0.3 s and was killed"
    assert isinstance(failed.value, CommandFailed) and failed.value.exitcode is None


def test_a_missing_program_names_its_package(tmp_path: Path) -> None:
    with pytest.raises(CommandNotFound) as failed:
        run([str(tmp_path / "fio"), "--version"], timeout_s=10)
    assert str(failed.value) == (
        f"`{tmp_path / 'fio'}` not found: install it (Debian/Ubuntu: `apt-get install fio`, "
        "openSUSE: `zypper install fio`)"
    )
    with pytest.raises(CommandNotFound, match="apt-get install gcc"):
        run([str(tmp_path / "cc")], timeout_s=10, need="gcc")
    with pytest.raises(CommandNotFound, match=r"not found: is it installed"):
        run(["vbench-no-such-program"], timeout_s=10)


def test_no_other_module_runs_programs_itself() -> None:
    """Every subprocess goes through vbench.command (host/testbed.py's execv replaces vbench)."""
    offenders = [
        str(p.relative_to(VBENCH))
        for p in VBENCH.rglob("*.py")
        if p.name != "command.py"
        and re.search(r"^\s*(import|from) subprocess\b", p.read_text(), re.M)
    ]
    assert offenders == []
