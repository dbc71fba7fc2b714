"""infra/bootstrap/install-python-deps.sh, run for real by bash in a sandbox.

A fake `python3.11` on PATH stands in for the interpreter: `-m venv DIR` creates DIR/bin/python
(a copy of the fake), `-m pip ...` records its arguments and the requirements it was given, and
fails on demand. A fake `sudo` refuses everything, so no test can touch the machine's packages.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
from cfn_template import BOOTSTRAP_SCRIPT, REPO_ROOT
from packaging.requirements import Requirement

FAKE_PYTHON = r"""#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
if [[ "$1" == "-m" && "$2" == "venv" ]]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
elif [[ "$1" == "-m" && "$2" == "pip" ]]; then
    echo "pip $*" >> "$FAKE_PIP_LOG"
    previous=""
    for arg in "$@"; do
        if [[ "$previous" == "--requirement" ]]; then cat "$arg" > "$FAKE_PIP_LOG.requirements"; fi
        previous="$arg"
    done
    if [[ "${FAKE_PIP_EXIT:-0}" != 0 ]]; then
        echo "ERROR: No matching distribution found for tensorflow-cpu==2.20.0" >&2
        exit "$FAKE_PIP_EXIT"
    fi
fi
exit 0
"""
FAKE_SUDO = """#!/usr/bin/env bash
echo "sudo $*" >> "$FAKE_LOG"
exit 1
"""
JOB_PACKAGES = {
    "tensorflow-cpu",
    "ai-edge-litert",
    "pillow",
    "boto3",
    "numpy",
    "pandas",
    "pyarrow",
    "pyiceberg",
}


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "python3.11", FAKE_PYTHON)
    _executable(bin_dir / "sudo", FAKE_SUDO)
    return {
        "bin": bin_dir,
        "venv": tmp_path / "opt" / "fruits" / "python3.11",
        "log": tmp_path / "calls.log",
        "pip_log": tmp_path / "pip.log",
    }


def _run_script(sandbox: dict[str, Path], script: Path = BOOTSTRAP_SCRIPT, **extra_env: str):
    env = {
        "PATH": f"{sandbox['bin']}{os.pathsep}/usr/bin:/bin",
        "HOME": str(sandbox["bin"].parent),
        "FRUITS_VENV_DIR": str(sandbox["venv"]),
        "FAKE_LOG": str(sandbox["log"]),
        "FAKE_PIP_LOG": str(sandbox["pip_log"]),
        **extra_env,
    }
    return subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _pip_calls(sandbox: dict[str, Path]) -> list[str]:
    log = sandbox["pip_log"]
    return log.read_text().splitlines() if log.exists() else []


def _script_pins(script: Path = BOOTSTRAP_SCRIPT) -> list[str]:
    block = re.search(r'readonly REQUIREMENTS="([^"]+)"', script.read_text())[1]
    return block.split()


def test_first_run_installs_the_pins_and_second_run_skips(sandbox):
    # GIVEN a node without the job's environment
    # WHEN the bootstrap runs twice
    first = _run_script(sandbox)
    second = _run_script(sandbox)
    # THEN the first run creates the venv and pip-installs exactly the pinned list once
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    calls = _pip_calls(sandbox)
    assert len(calls) == 1
    assert "install" in calls[0] and "--no-cache-dir" in calls[0]
    installed = Path(f"{sandbox['pip_log']}.requirements").read_text().split()
    assert installed == _script_pins()
    # AND the marker records the pin list's hash, so the second run skips
    marker = sandbox["venv"] / ".fruits-requirements.sha256"
    expected_hash = hashlib.sha256(("\n".join(_script_pins()) + "\n").encode()).hexdigest()
    assert marker.read_text().strip() == expected_hash
    assert "skipping" in second.stdout
    assert "sudo" not in sandbox["log"].read_text(), "the sandbox venv dir is writable: no sudo needed"


def test_failing_pip_stops_loudly_and_leaves_no_marker(sandbox):
    # GIVEN pip fails (PyPI unreachable, a pin without a wheel)
    # WHEN the bootstrap runs
    result = _run_script(sandbox, FAKE_PIP_EXIT="1")
    # THEN it exits non-zero with a message naming the failed step, and writes no marker
    assert result.returncode != 0
    assert "FAILED" in result.stderr and "pip install" in result.stderr
    assert "No matching distribution" in result.stderr, "pip's own message must reach the EMR log"
    assert not (sandbox["venv"] / ".fruits-requirements.sha256").exists()
    # AND the next run tries again (and succeeds once pip does)
    retry = _run_script(sandbox)
    assert retry.returncode == 0, retry.stderr
    assert len(_pip_calls(sandbox)) == 2


def test_a_changed_pin_list_reinstalls(sandbox, tmp_path):
    # GIVEN a node bootstrapped with the current pins
    assert _run_script(sandbox).returncode == 0
    # WHEN a new version of the script with one pin changed runs
    changed = tmp_path / "install-python-deps.sh"
    changed.write_text(BOOTSTRAP_SCRIPT.read_text().replace("pandas==", "pandas>=", 1))
    result = _run_script(sandbox, script=changed)
    # THEN it installs again instead of trusting the old marker
    assert result.returncode == 0, result.stderr
    assert len(_pip_calls(sandbox)) == 2
    assert "skipping" not in result.stdout


def test_missing_python_fails_with_a_clear_message(sandbox):
    # GIVEN no python3.11 on the node and a dnf install that fails (the fake sudo refuses)
    # WHEN the bootstrap runs
    result = _run_script(sandbox, FRUITS_PYTHON="python3.11-absent")
    # THEN it stops with a message saying what is missing, before any pip call
    assert result.returncode != 0
    assert "python3.11-absent is missing" in result.stderr
    assert _pip_calls(sandbox) == []


def test_pins_are_the_job_dependencies_within_pyproject_ranges():
    # GIVEN the bootstrap's pins and pyproject.toml's dependencies
    pins = {Requirement(pin).name: Requirement(pin) for pin in _script_pins()}
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {}
    for line in project:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"sys_platform": "linux"}):
            declared[requirement.name] = requirement
    # THEN every job package is pinned exactly, to a version pyproject.toml allows
    assert set(pins) == JOB_PACKAGES
    for name, pin in pins.items():
        (spec,) = pin.specifier
        assert spec.operator == "==", f"{name} must be pinned exactly"
        assert declared[name].specifier.contains(spec.version), f"{name}=={spec.version} outside pyproject"
