"""infra/bootstrap/check-python.sh, run for real by bash in a sandbox.

Fake interpreters stand in for /usr/bin/python3.11 (they answer the version check as told), and a
fake `sudo` records its arguments and fails on demand, so no test can touch the machine's packages.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from cfn_template import BOOTSTRAP_SCRIPT

from operations.env_archive import EMR_PYTHON_PREFIX

FAKE_PYTHON = """#!/usr/bin/env bash
echo "python $*" >> "$FAKE_LOG"
exit {version_check_exit}
"""
# `sudo dnf install -y python3.11`: records the call, then creates the interpreter unless told to fail.
FAKE_SUDO = """#!/usr/bin/env bash
echo "sudo $*" >> "$FAKE_LOG"
if [[ "${FAKE_DNF_EXIT:-0}" != 0 ]]; then exit "$FAKE_DNF_EXIT"; fi
mkdir -p "$(dirname "$FAKE_INSTALLED_PYTHON")"
printf '#!/usr/bin/env bash\\nexit 0\\n' > "$FAKE_INSTALLED_PYTHON" && chmod +x "$FAKE_INSTALLED_PYTHON"
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "sudo", FAKE_SUDO)
    return {"bin": bin_dir, "python": tmp_path / "usr" / "bin" / "python3.11", "log": tmp_path / "calls.log"}


def _run_script(sandbox: dict[str, Path], **extra_env: str):
    env = {
        "PATH": f"{sandbox['bin']}{os.pathsep}/usr/bin:/bin",
        "HOME": str(sandbox["bin"].parent),
        "FRUITS_PYTHON": str(sandbox["python"]),
        "FAKE_LOG": str(sandbox["log"]),
        "FAKE_INSTALLED_PYTHON": str(sandbox["python"]),
        **extra_env,
    }
    return subprocess.run(
        ["bash", str(BOOTSTRAP_SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _calls(sandbox: dict[str, Path]) -> list[str]:
    return sandbox["log"].read_text().splitlines() if sandbox["log"].exists() else []


def _install_python(sandbox: dict[str, Path], version_check_exit: int) -> None:
    sandbox["python"].parent.mkdir(parents=True)
    _executable(sandbox["python"], FAKE_PYTHON.format(version_check_exit=version_check_exit))


def test_a_node_with_python_3_11_needs_nothing_installed(sandbox):
    # GIVEN a node that has the interpreter the archive links to
    _install_python(sandbox, version_check_exit=0)
    # WHEN the bootstrap runs
    result = _run_script(sandbox)
    # THEN it only checks the version: no dnf, no pip, nothing fetched
    assert result.returncode == 0, result.stderr
    assert _calls(sandbox) == [f"python -c {'import sys; sys.exit(sys.version_info[:2] != (3, 11))'}"]


def test_a_missing_interpreter_is_installed_with_dnf(sandbox):
    # GIVEN a node without it
    # WHEN the bootstrap runs
    result = _run_script(sandbox)
    # THEN it installs python3.11 with dnf and succeeds
    assert result.returncode == 0, result.stderr
    assert _calls(sandbox) == ["sudo dnf install -y python3.11"]


def test_a_failing_dnf_stops_loudly(sandbox):
    # GIVEN a node without the interpreter, and a dnf that fails
    result = _run_script(sandbox, FAKE_DNF_EXIT="1")
    # THEN the script fails with a message naming what is missing
    assert result.returncode != 0
    assert "FAILED" in result.stderr and "dnf install python3.11" in result.stderr


def test_another_python_version_is_refused(sandbox):
    # GIVEN an interpreter at the path that is not 3.11 (its version check exits 1)
    _install_python(sandbox, version_check_exit=1)
    result = _run_script(sandbox)
    # THEN the node fails its bootstrap: the archive's cp311 wheels would not load
    assert result.returncode != 0
    assert "is not Python 3.11" in result.stderr


def test_the_script_checks_the_interpreter_the_archive_links_to():
    # GIVEN the script's default and the prefix the archive is packed for THEN they name one path
    assert f"FRUITS_PYTHON:-{EMR_PYTHON_PREFIX}/bin/python3.11}}" in BOOTSTRAP_SCRIPT.read_text()


def test_the_script_installs_no_python_package():
    # GIVEN the bootstrap's commands (comments aside) THEN none runs pip: the packages come in the archive
    lines = BOOTSTRAP_SCRIPT.read_text().splitlines()
    commands = [line for line in lines if not line.lstrip().startswith("#")]
    assert not [line for line in commands if re.search(r"\bpip3?(\.\d+)?\b", line)]
