"""`fruits stream` that SIGKILLs its own process group at one chosen step: the crash tests' one driver.

The fault lands exactly where a crash hurts most, not at a moment guessed from the
outside. Usage (what `run_until_killed` launches):

    python -m tests.streaming.self_kill STEP MARKER <fruits stream flags>

STEP is one of STEPS. A micro-batch's commit: before-features (the batch is featurized,
nothing appended), between-commits (the features appended, not the errors), after-commits
(both appended, Spark's commit log not written yet). A checkpoint epoch rotation:
before-next-epoch (the old epoch's query stopped, the next not started),
new-epoch-between-commits (in the next epoch, a batch's features appended, not its errors
nor Spark's commit), before-retire (the next epoch's query started, the old epoch not
deleted yet). MARKER is written just before the kill, so the test knows it happened there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

COMMIT_STEPS = ("before-features", "between-commits", "after-commits")
ROTATION_STEPS = ("before-next-epoch", "new-epoch-between-commits", "before-retire")
STEPS = COMMIT_STEPS + ROTATION_STEPS
REPO_ROOT = Path(__file__).resolve().parents[2]


def install(step: str, marker: Path) -> None:
    """Patch the sink and the rotation so that the driver kills itself (JVM and workers with it) at `step`."""
    from fruits_lake.sink import TableSink
    from streaming_job.checkpoints.epoch_rotation import EpochCheckpoints

    if step not in STEPS:
        raise SystemExit(f"unknown step {step!r}, expected one of {STEPS}")
    append, write = TableSink._append, TableSink.write
    advance, retire = EpochCheckpoints.advance, EpochCheckpoints.retire
    rotated = []

    def kill() -> None:
        marker.write_text(step)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    def killing_append(self, table, rows, properties):
        if step == "before-features" and table is self.features and rows.num_rows:
            kill()
        committed = append(self, table, rows, properties)
        features_committed = table is self.features and committed
        if features_committed and (
            step == "between-commits" or (step == "new-epoch-between-commits" and rotated)
        ):
            kill()
        return committed

    def killing_write(self, *args):
        result = write(self, *args)
        if step == "after-commits":
            kill()
        return result

    def killing_advance(self):
        if step == "before-next-epoch":
            kill()
        rotated.append(True)
        return advance(self)

    def killing_retire(self):
        if step == "before-retire" and rotated:
            kill()
        return retire(self)

    TableSink._append, TableSink.write = killing_append, killing_write
    EpochCheckpoints.advance, EpochCheckpoints.retire = killing_advance, killing_retire


def group_alive(group: int) -> bool:
    """Whether any non-zombie process of the group is left."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def run_until_killed(step: str, stream_flags: list[str], work: Path, log: Path, timeout: float) -> None:
    """Run `fruits stream <stream_flags>` until it killed itself at `step`; fail if it ended any other way."""
    import pytest

    marker = work / f"killed-{step}"
    command = [sys.executable, "-m", "tests.streaming.self_kill", step, str(marker), *stream_flags]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT))
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT, start_new_session=True
        )
    try:
        returncode = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        pytest.fail(f"the stream never reached {step}:\n{log.read_text()[-3000:]}")
    deadline = time.monotonic() + 30
    while group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert marker.read_text() == step


if __name__ == "__main__":
    install(sys.argv[1], Path(sys.argv[2]))
    from fruits_cli.main import main

    sys.exit(main(["stream", *sys.argv[3:]]))
