"""`fruits stream` that SIGKILLs its own process group at one step of a checkpoint epoch rotation.

The rotation test's fault, placed exactly where a crash around a rotation hurts
most. Usage:

    python -m tests.streaming.kill_rotation_at STEP MARKER <fruits stream flags>

STEP is one of STEPS: before-next-epoch (the old epoch's query stopped, the
next epoch not started), new-epoch-between-commits (in the next epoch, a
batch's features appended, its errors and Spark's commit not yet),
before-retire (the next epoch's query started, the old epoch not deleted yet). MARKER is
written just before the kill, so the test knows it happened there.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from fruits_cli.main import main
from fruits_lake.sink import TableSink
from streaming_job.epoch_rotation import EpochCheckpoints

STEPS = ("before-next-epoch", "new-epoch-between-commits", "before-retire")


def install(step: str, marker: Path) -> None:
    """Patch the rotation (and the sink) so that the driver kills itself at `step`."""
    if step not in STEPS:
        raise SystemExit(f"unknown step {step!r}, expected one of {STEPS}")
    advance, retire, append = EpochCheckpoints.advance, EpochCheckpoints.retire, TableSink._append
    rotated = []

    def kill() -> None:
        marker.write_text(step)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    def killing_advance(self):
        if step == "before-next-epoch":
            kill()
        rotated.append(True)
        return advance(self)

    def killing_retire(self):
        if step == "before-retire" and rotated:
            kill()
        return retire(self)

    def killing_append(self, table, rows, properties):
        committed = append(self, table, rows, properties)
        if step == "new-epoch-between-commits" and rotated and table is self.features and committed:
            kill()
        return committed

    EpochCheckpoints.advance = killing_advance
    EpochCheckpoints.retire = killing_retire
    TableSink._append = killing_append


if __name__ == "__main__":
    install(sys.argv[1], Path(sys.argv[2]))
    sys.exit(main(["stream", *sys.argv[3:]]))
