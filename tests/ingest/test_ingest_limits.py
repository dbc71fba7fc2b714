"""The worst accepted inputs fit the function's memory and the per-record time budget.

Each input is built once, then decoded in a fresh interpreter that imports the
Lambda's own modules (its memory baseline); peak RSS and decode time are
compared with the template's FunctionMemoryMB and RECORD_TIME_BUDGET_MS.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from fruits_ingest.config import DEFAULT_RECORD_TIME_BUDGET_MS

from fruits_core import contracts

from .helpers import LAKE_URI, REPO_ROOT, TEST_PSEUDONYM_KEY, module_env
from .worst_case import INPUTS

# Room left for the SQS batch, the S3 response bodies and Python's own growth during a batch.
MEMORY_HEADROOM = 0.8
# The function's arm64 share of a vCPU at 1024 MB is below one core of this machine: keep 2x margin.
CPU_MARGIN = 2


def _function_memory_mb() -> int:
    text = (REPO_ROOT / "template.yaml").read_text(encoding="utf-8")
    block = re.search(r"\n  FunctionMemoryMB:\n(?:    .*\n)*?    Default: (\d+)", text)
    assert block, "FunctionMemoryMB parameter not found in template.yaml"
    return int(block.group(1))


def _run(*args: str) -> str:
    env = module_env(LAKE_URI=LAKE_URI, PSEUDONYM_KEY=TEST_PSEUDONYM_KEY, AWS_DEFAULT_REGION="eu-west-3")
    result = subprocess.run(
        [sys.executable, "-m", "tests.ingest.worst_case", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", list(INPUTS))
def test_worst_accepted_input_fits_memory_and_time_budget(name, tmp_path):
    # GIVEN one of the worst inputs the limits accept (40 MP, widest WebP, most scans)
    path = tmp_path / name
    _run("make", name, str(path))
    # WHEN a fresh interpreter with the function's imports decodes and re-encodes it
    measured = json.loads(_run("measure", str(path)))
    # THEN it is accepted, and peak memory and time stay within the configured budgets
    assert max(measured["output"]) == contracts.CLEAN_IMAGE_MAX_SIDE_PX
    assert measured["peak_rss_mb"] <= MEMORY_HEADROOM * _function_memory_mb(), measured
    assert measured["cpu_seconds"] * CPU_MARGIN * 1000 <= DEFAULT_RECORD_TIME_BUDGET_MS, measured
