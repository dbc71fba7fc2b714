"""The bad-input corpus passes under the Lambda's own runtime and pins, not only the dev venv's."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from .helpers import REPO_ROOT

LAMBDA_PYTHON = REPO_ROOT / ".venv-lambda" / "bin" / "python"
REQUIREMENTS = REPO_ROOT / "lambdas" / "ingest" / "requirements.txt"


def _pinned(package: str) -> str:
    match = re.search(rf"^{package}==(\S+)$", REQUIREMENTS.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"{package} is not pinned in {REQUIREMENTS.name}"
    return match.group(1)


@pytest.mark.lambda_pins
def test_corpus_passes_under_the_lambda_pins():
    if not os.access(LAMBDA_PYTHON, os.X_OK):
        pytest.fail(".venv-lambda is missing: run `make test` (it installs it with the Lambda's pins)")
    # GIVEN the Lambda's runtime (Python 3.12) and its pinned Pillow and Powertools
    # WHEN the whole corpus goes through the handler there
    result = subprocess.run(
        [LAMBDA_PYTHON, "-m", "tests.ingest.lambda_pins_corpus"],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "lambdas" / "ingest"), str(REPO_ROOT)]),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # THEN every case ends as expected, with exactly the pinned decoder
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failures"] == {}, report["failures"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert report["python"] == "3.12"
    assert report["pillow"] == _pinned("pillow")
