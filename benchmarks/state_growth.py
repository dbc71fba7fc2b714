"""State growth of the stream's file source over simulated days: one checkpoint forever vs. daily epochs.

Measures what Spark's file source keeps and reloads, not the model: the stream's
real reader (`stream.read_manifests`: manifests/, recursive lookup, cleanSource
archive, maxFilesPerTrigger) and real checkpoints on a local lake, with the
featurization replaced by a cheap foreachBatch that only collects the manifest
file names it was given. Each simulated day writes `--per-day` manifests (their
modification times set to that day, so the source's 7-day maxFileAge behaves as
in production), then one available-now query drains them: a restart per day, on
the same checkpoint ("forever") or on the current epoch, rotated by the real
`EpochCheckpoints` with a simulated clock ("epochs").

    python -m benchmarks.state_growth [--days 30] [--per-day 10000] [--json-out F] [--plot-out F]

Each design runs in its own process (a fresh JVM), one after the other.

Per day and design it records the checkpoint's bytes, the manifests listed by
the batches (files under manifests/ when a batch starts: the source lists the
whole tree each batch), the restart time (query start to its first batch's
foreachBatch call: the source log loaded, manifests/ listed, the batch planned),
the driver's JVM heap in use after a full GC, and manifests delivered again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from fruits_core.lake_uris import file_uri

DESIGNS = ("forever", "epochs")
MASTER = "local[2]"
DAY_MS = 86_400_000
EPOCH_HOURS = 24.0


@dataclass(frozen=True)
class DayRecord:
    day: int
    manifests_total: int
    batches: int
    checkpoint_bytes: int
    max_files_listed: int
    restart_seconds: float
    heap_used_mb: float
    # Manifests delivered again (a new epoch re-reading what cleanSource had not archived yet).
    redelivered: int


class SimulatedClock:
    """Epoch milliseconds of the simulated day: EpochCheckpoints rotates on it, not on wall time."""

    def __init__(self, start_ms: int) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms


class BatchProbe:
    """The cheap foreachBatch: when the first batch arrived, what was listed, which manifests it holds."""

    def __init__(self, manifests_dir: Path, checkpoint_dir: Path) -> None:
        self.manifests_dir = manifests_dir
        self.checkpoint_dir = checkpoint_dir
        self.first_batch_at: float | None = None
        self.listed: list[int] = []
        self.delivered: Counter[str] = Counter()

    def __call__(self, batch, batch_id: int) -> None:
        if self.first_batch_at is None:
            self.first_batch_at = time.monotonic()
        self.listed.append(count_files(self.manifests_dir))
        self.delivered.update(batch_files(self.checkpoint_dir, batch_id))


def batch_files(checkpoint_dir: Path, batch_id: int) -> list[str]:
    """The manifest names the file source logged for `batch_id`: what the batch delivers, nothing read.

    The log holds `v1` then one JSON entry per file; every 10th batch is a `.compact`
    file carrying all earlier entries too, hence the filter on batchId.
    """
    log_dir = checkpoint_dir / "sources" / "0"
    path = log_dir / str(batch_id)
    if not path.exists():
        path = log_dir / f"{batch_id}.compact"
    entries = (json.loads(line) for line in path.read_text().splitlines()[1:] if line)
    return [entry["path"].rsplit("/", 1)[-1] for entry in entries if entry["batchId"] == batch_id]


def count_files(root: Path) -> int:
    """Visible files under `root`, as the file source lists them (hidden `.`/`_` names skipped)."""
    total = 0
    for _, directories, files in os.walk(root):
        directories[:] = [name for name in directories if not name.startswith((".", "_"))]
        total += sum(1 for name in files if not name.startswith((".", "_")))
    return total


def tree_bytes(root: Path) -> int:
    return sum(
        (Path(directory) / name).stat().st_size for directory, _, files in os.walk(root) for name in files
    )


def write_day(manifests_dir: Path, day: int, per_day: int, day_start_ms: int) -> None:
    """`per_day` manifests under dt=<day>/, modified at even steps through that simulated day."""
    dt = time.strftime("%Y-%m-%d", time.gmtime(day_start_ms / 1000))
    directory = manifests_dir / f"dt={dt}"
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(per_day):
        image_id = f"{day:08x}{index:024x}"
        path = directory / f"{image_id}.json"
        path.write_text(f'{{"schema_version":1,"image_id":"{image_id}","dt":"{dt}"}}')
        modified_ns = (day_start_ms + index * DAY_MS // per_day) * 1_000_000
        os.utime(path, ns=(modified_ns, modified_ns))


def heap_used_mb(spark) -> float:
    """The driver JVM's heap in use after a full GC: what it retains, not its garbage."""
    jvm = spark._jvm
    jvm.java.lang.System.gc()
    runtime = jvm.java.lang.Runtime.getRuntime()
    return (runtime.totalMemory() - runtime.freeMemory()) / 2**20


def warm_up(spark, scratch: Path, manifests: int) -> None:
    """One throwaway query first, so that day 1's restart time is not the JVM's cold start."""
    from streaming_job.config import StreamConfig
    from streaming_job.query.stream import read_manifests

    write_day(scratch / "manifests", 0, manifests, wall_clock_day_ms())
    config = StreamConfig(
        lake=file_uri(scratch),
        checkpoint=file_uri(scratch / "checkpoint"),
        featurizer="file:///unused/featurizer.tflite",
        pca="file:///unused/pca",
        available_now=True,
        max_files_per_trigger=manifests,
    )
    query = read_manifests(spark, config).writeStream.foreachBatch(lambda batch, batch_id: None)
    query.option("checkpointLocation", config.checkpoint).trigger(
        availableNow=True
    ).start().awaitTermination()
    shutil.rmtree(scratch)


def wall_clock_day_ms() -> int:
    return int(time.time()) // 86_400 * DAY_MS


def simulate(spark, design: str, workdir: Path, days: int, per_day: int, max_files: int) -> list[DayRecord]:
    """Run `days` simulated days of one design; return one record per day."""
    from streaming_job.checkpoints.epoch_rotation import EpochCheckpoints
    from streaming_job.config import StreamConfig
    from streaming_job.query.stream import read_manifests

    lake = workdir / design
    shutil.rmtree(lake, ignore_errors=True)
    manifests_dir = lake / "manifests"
    manifests_dir.mkdir(parents=True)
    checkpoint_root = lake / "checkpoints" / "features"
    config = StreamConfig(
        lake=file_uri(lake),
        checkpoint=file_uri(checkpoint_root),
        featurizer="file:///unused/featurizer.tflite",
        pca="file:///unused/pca",
        available_now=True,
        max_files_per_trigger=max_files,
        clean_source="archive",
        checkpoint_epoch_hours=EPOCH_HOURS,
    )
    clock = SimulatedClock(wall_clock_day_ms() - (days + 1) * DAY_MS)
    epochs = EpochCheckpoints(spark, config.checkpoint, EPOCH_HOURS, clock=clock)
    if design == "epochs":
        epochs.open()
    warm_up(spark, workdir / f"{design}-warm-up", min(per_day, max_files))
    delivered: Counter[str] = Counter()
    records = []
    for day in range(days):
        if day:
            clock.now_ms += DAY_MS
        write_day(manifests_dir, day, per_day, clock.now_ms)
        if design == "epochs" and epochs.due():
            epochs.advance()
            epochs.retire()
        checkpoint = epochs.current_uri() if design == "epochs" else config.checkpoint
        probe = BatchProbe(manifests_dir, Path(checkpoint.removeprefix("file://")))
        started = time.monotonic()
        query = (
            read_manifests(spark, config)
            .writeStream.foreachBatch(probe)
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
        if query.exception() is not None:
            raise RuntimeError(f"day {day}: the query failed: {query.exception()}")
        redelivered = sum(probe.delivered.values()) - sum(
            1 for name in probe.delivered if name not in delivered
        )
        delivered.update(probe.delivered)
        records.append(
            DayRecord(
                day=day + 1,
                manifests_total=(day + 1) * per_day,
                batches=len(probe.listed),
                checkpoint_bytes=tree_bytes(checkpoint_root),
                max_files_listed=max(probe.listed, default=0),
                restart_seconds=round((probe.first_batch_at or time.monotonic()) - started, 3),
                heap_used_mb=round(heap_used_mb(spark), 1),
                redelivered=redelivered,
            )
        )
        print(json.dumps({"design": design, **asdict(records[-1])}), flush=True)
        # The archive is never listed by the source: emptied only to keep the simulation's disk use small.
        shutil.rmtree(lake / "archive", ignore_errors=True)
    missing = days * per_day - len(delivered)
    if missing:
        raise RuntimeError(f"{design}: {missing} manifests were never delivered")
    return records


def plot(results: dict, out: Path) -> None:
    """Checkpoint MB and restart seconds against the simulated day, one line per design."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (size_axis, restart_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for design, records in results["designs"].items():
        days = [record["day"] for record in records]
        size_axis.plot(
            days, [record["checkpoint_bytes"] / 1e6 for record in records], marker=".", label=design
        )
        restart_axis.plot(days, [record["restart_seconds"] for record in records], marker=".", label=design)
    parameters = results["parameters"]
    size_axis.set(xlabel="simulated day", ylabel="checkpoint size (MB)", title="Checkpoint size")
    restart_axis.set(xlabel="simulated day", ylabel="seconds", title="Restart: start to first batch planned")
    for axis in (size_axis, restart_axis):
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(alpha=0.3)
        axis.legend()
        axis.set_ylim(bottom=0)
    figure.suptitle(
        f"File source state, {parameters['per_day']:,} manifests/day, "
        f"{parameters['max_files_per_trigger']:,} per batch, cleanSource archive"
    )
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def run_design(spark, design: str, workdir: Path, days: int, per_day: int, max_files: int) -> dict:
    started = time.monotonic()
    records = [asdict(record) for record in simulate(spark, design, workdir, days, per_day, max_files)]
    return {"records": records, "wall_seconds": round(time.monotonic() - started, 1)}


def run_in_own_process(design: str, args: argparse.Namespace, workdir: Path) -> dict:
    """One design in a fresh Python and JVM, so that neither warms up or fills the other's heap."""
    out = workdir / f"{design}.json"
    command = [sys.executable, "-m", "benchmarks.state_growth", "--only", design, "--records-out", str(out)]
    command += ["--days", str(args.days), "--per-day", str(args.per_day)]
    command += ["--max-files-per-trigger", str(args.max_files_per_trigger), "--workdir", str(workdir)]
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="state_growth", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=10_000)
    parser.add_argument("--max-files-per-trigger", type=int, default=2_500)
    parser.add_argument(
        "--workdir", type=Path, help="where the simulated lakes go (default: a temporary folder)"
    )
    parser.add_argument("--json-out", type=Path, default=Path("docs/data/state_growth.json"))
    parser.add_argument("--plot-out", type=Path, default=Path("docs/state_growth.png"))
    # Internal: run one design in this process and write its records (what run_in_own_process calls).
    parser.add_argument("--only", choices=DESIGNS, help=argparse.SUPPRESS)
    parser.add_argument("--records-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.days < 1 or args.per_day < 1 or args.max_files_per_trigger < 1:
        parser.error("--days, --per-day and --max-files-per-trigger must be >= 1")
    if args.only:
        from streaming_job.session import build_spark_session

        spark = build_spark_session(f"fruits-state-growth-{args.only}", master=MASTER)
        result = run_design(
            spark, args.only, args.workdir, args.days, args.per_day, args.max_files_per_trigger
        )
        args.records_out.write_text(json.dumps(result))
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fruits-state-growth-"))
    workdir.mkdir(parents=True, exist_ok=True)
    designs = {design: run_in_own_process(design, args, workdir) for design in DESIGNS}
    results = {
        "parameters": {
            "days": args.days,
            "per_day": args.per_day,
            "max_files_per_trigger": args.max_files_per_trigger,
            "master": MASTER,
            "clean_source": "archive",
        },
        "wall_seconds": {design: result["wall_seconds"] for design, result in designs.items()},
        "designs": {design: result["records"] for design, result in designs.items()},
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.plot_out)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
