"""`fruits status` reads the status log with plain Python: it must not load pyspark."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import json, sys
from fruits_cli.main import main
code = main(["status", "--lake", sys.argv[1], "--json"])
print(json.dumps({"code": code, "pyspark": sorted(m for m in sys.modules if m.startswith("pyspark"))}))
"""


def test_fruits_status_runs_without_importing_pyspark(tmp_path, repo_root):
    # GIVEN a path with no lake WHEN `fruits status` runs in a fresh interpreter
    result = subprocess.run(
        [sys.executable, "-c", PROBE, (tmp_path / "lake").as_uri()],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # THEN it reports NO-LAKE (exit 8) and no pyspark module was ever imported
    assert result.returncode == 0, result.stderr
    report = result.stdout.strip().splitlines()[-1]
    assert report == '{"code": 8, "pyspark": []}'
