"""`fruits stream` that SIGKILLs its own process group at one step of a micro-batch's commit.

The exactly-once test's fault: the kill lands exactly where a crash hurts most,
not at a moment guessed from the outside. Usage:

    python -m tests.streaming.kill_stream_at STEP MARKER <fruits stream flags>

STEP is one of STEPS: before-features (the batch is featurized, nothing
appended), between-commits (the features appended, not the errors),
after-commits (both appended, Spark's commit log not written yet). MARKER is
written just before the kill, so the test knows it happened there.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from fruits_cli.main import main
from fruits_lake.sink import TableSink

STEPS = ("before-features", "between-commits", "after-commits")


def install(step: str, marker: Path) -> None:
    """Patch the sink so that the driver kills itself (JVM and Python workers with it) at `step`."""
    if step not in STEPS:
        raise SystemExit(f"unknown step {step!r}, expected one of {STEPS}")
    append, write = TableSink._append, TableSink.write

    def kill() -> None:
        marker.write_text(step)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    def killing_append(self, table, rows, properties):
        if step == "before-features" and table is self.features and rows.num_rows:
            kill()
        committed = append(self, table, rows, properties)
        if step == "between-commits" and table is self.features and committed:
            kill()
        return committed

    def killing_write(self, *args):
        result = write(self, *args)
        if step == "after-commits":
            kill()
        return result

    TableSink._append = killing_append
    TableSink.write = killing_write


if __name__ == "__main__":
    install(sys.argv[1], Path(sys.argv[2]))
    sys.exit(main(["stream", *sys.argv[3:]]))
