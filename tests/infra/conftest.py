"""Fixtures of the template tests: the two templates parsed, and the linters' executables.

The linters live in their own virtual environments (.venv-sam, .venv-checkov) because their pins
clash with pytest's; `make test` installs them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cfn_template import EMR_TEMPLATE, INGEST_TEMPLATE, REPO_ROOT, load_template


@pytest.fixture(scope="session")
def ingest_template() -> dict[str, Any]:
    return load_template(INGEST_TEMPLATE)


@pytest.fixture(scope="session")
def emr_template() -> dict[str, Any]:
    return load_template(EMR_TEMPLATE)


def _tool(relative: str) -> Path:
    path = REPO_ROOT / relative
    if not os.access(path, os.X_OK):
        pytest.fail(f"{relative} is missing: run `make test` (it installs .venv-sam/.venv-checkov)")
    return path


@pytest.fixture(scope="session")
def cfn_lint() -> Path:
    return _tool(".venv-sam/bin/cfn-lint")


@pytest.fixture(scope="session")
def sam() -> Path:
    return _tool(".venv-sam/bin/sam")


@pytest.fixture(scope="session")
def checkov() -> Path:
    return _tool(".venv-checkov/bin/checkov")


@pytest.fixture(scope="session")
def offline_aws_env() -> dict[str, str]:
    """Environment for the AWS tools: dummy credentials, EU region, no telemetry, no real profile."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="eu-west-3",
        SAM_CLI_TELEMETRY="0",
        # SAM's pip builder runs the function runtime's python3.12 it finds on PATH: .venv-lambda's.
        PATH=os.pathsep.join(
            [
                str(REPO_ROOT / ".venv-sam" / "bin"),
                str(REPO_ROOT / ".venv-lambda" / "bin"),
                os.environ.get("PATH", ""),
            ]
        ),
    )
    return env
