"""An EMR step run locally: its files laid out as the step has them, and spark-submit run on them.

The one harness of the spark-submit tests (the job zip, the packed environment, the maintenance
step): each says what differs (the entry, the master, the environment), not how to launch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from operations.job_package import build_job_package

REPO_ROOT = Path(__file__).resolve().parents[2]
JOB_ZIP = "fruits_job.zip"


def lay_out_step(step: Path, entry: str) -> Path:
    """The job zip and `streaming_job/<entry>` alone in a folder, as an EMR step has them."""
    step.mkdir(parents=True, exist_ok=True)
    (step / JOB_ZIP).write_bytes(build_job_package().data)
    (step / entry).write_bytes((REPO_ROOT / "streaming_job" / entry).read_bytes())
    return step


def checkout_free_env() -> dict[str, str]:
    """This environment without PYTHONPATH: the job imports from the zip, this interpreter runs it."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("PYTHONPATH", None)
    return env


def spark_submit(
    step: Path,
    entry: str,
    entry_args: list[str],
    *,
    master: str = "local[1]",
    submit_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """`spark-submit --master M <submit_args> --py-files fruits_job.zip <entry> <entry_args>`, in `step`."""
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("spark-submit")),
            "--master",
            master,
            *submit_args,
            "--py-files",
            JOB_ZIP,
            entry,
            *entry_args,
        ],
        cwd=step,
        env=checkout_free_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
