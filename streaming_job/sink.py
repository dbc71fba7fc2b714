"""Exactly-once publication of a micro-batch's Parquet output, keyed by batch id.

Spark re-runs a micro-batch whose commit was not logged (a killed driver) with
the same offsets, hence the same rows. Each batch is therefore written to a
staging directory first, then every staged file is moved to a name derived
from the batch id alone: `dt=<dt>/part-<batch_id:010d>-<n:05d>.parquet`.
Before moving, any file of the same batch id left by an earlier attempt is
deleted, so publishing a batch twice leaves exactly one copy of its rows.

A batch's rows are few and narrow (k floats per image), so the driver encodes
them as Parquet itself, one file per `dt` (`parquet_by_partition`), instead of
planning and running one more Spark job per output and batch.
Writes, listing, renames and deletes go through Hadoop's FileSystem API in the
JVM, so the same code runs on `file://` (local mode) and `s3://` (EMRFS, with
the cluster's S3 encryption settings).
The staging area's leading underscore hides it from Spark and pyarrow readers.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fruits_core import contracts
from fruits_core.lake_uris import join_uri

STAGING_DIR = "_staging"
PARTITION_COLUMN = contracts.FEATURES_PARTITION_COLUMN
PARTITION_PREFIX = f"{PARTITION_COLUMN}="
# Spark's default Parquet codec, so files read the same whoever wrote them.
PARQUET_COMPRESSION = "snappy"
# py4j copies bytes into the JVM per call: staged files are sent in pieces of this size.
WRITE_CHUNK_BYTES = 4 * 2**20


def published_name(batch_id: int, index: int) -> str:
    """Deterministic file name of the `index`-th file of a batch."""
    return f"part-{batch_id:010d}-{index:05d}.parquet"


def published_glob(batch_id: int) -> str:
    """Glob (relative to the output root) matching every published file of a batch."""
    return f"{PARTITION_PREFIX}*/part-{batch_id:010d}-*.parquet"


@dataclass(frozen=True)
class Move:
    source: str
    target: str


def plan_publication(batch_id: int, staged_files: list[str]) -> list[Move]:
    """Map staged files (paths relative to the staging dir) to their published paths.

    Only data files count: names starting with `_` or `.` (markers, checksums)
    stay behind and are removed with the staging directory. The plan depends on
    the set of staged files only, never on the order they were listed in.
    """
    data_files = sorted(path for path in staged_files if _is_data_file(path))
    moves = []
    for index, path in enumerate(data_files):
        partition = _partition_dir(path)
        moves.append(Move(source=path, target=f"{partition}/{published_name(batch_id, index)}"))
    return moves


def parquet_by_partition(table: pa.Table) -> list[tuple[str, bytes]]:
    """`table` as Parquet files, one per `dt` value: [(`dt=<dt>/part-00000.parquet`, bytes)].

    The `dt` column becomes the directory (Hive partitioning, as Spark writes it),
    so it must look like a date: anything else could escape the output folder.
    """
    if table.num_rows == 0:
        return []
    files = []
    for dt in sorted(table.column(PARTITION_COLUMN).unique().to_pylist(), key=str):
        if dt is None or not re.fullmatch(contracts.DT_PATTERN, dt):
            raise ValueError(f"refusing to write rows whose {PARTITION_COLUMN} is not YYYY-MM-DD: {dt!r}")
        rows = table.filter(pc.equal(table.column(PARTITION_COLUMN), dt)).drop_columns([PARTITION_COLUMN])
        buffer = io.BytesIO()
        pq.write_table(rows, buffer, compression=PARQUET_COMPRESSION)
        files.append((f"{PARTITION_PREFIX}{dt}/part-00000.parquet", buffer.getvalue()))
    return files


def _is_data_file(relative_path: str) -> bool:
    name = relative_path.rsplit("/", 1)[-1]
    return name.endswith(".parquet") and not name.startswith(("_", "."))


def _partition_dir(relative_path: str) -> str:
    parts = relative_path.split("/")
    partition_dirs = [part for part in parts[:-1] if part.startswith(PARTITION_PREFIX)]
    if len(partition_dirs) != 1:
        raise ValueError(
            f"staged file is not inside exactly one {PARTITION_PREFIX}<value> directory: {relative_path!r}"
        )
    return partition_dirs[0]


class BatchPublisher:
    """Stages and publishes the Parquet files of one output (features/ or errors/)."""

    def __init__(self, spark, output_uri: str) -> None:
        self.output_uri = output_uri.rstrip("/")
        self._jvm = spark._jvm
        self._hadoop_conf = spark._jsc.hadoopConfiguration()
        self._root = self._path(self.output_uri)
        self._fs = self._root.getFileSystem(self._hadoop_conf)

    def staging_uri(self, batch_id: int) -> str:
        return join_uri(self.output_uri, STAGING_DIR, f"batch={batch_id}")

    def write(self, table: pa.Table, batch_id: int) -> int:
        """Stage `table`'s rows (one Parquet file per dt), then replace whatever an earlier attempt
        published for `batch_id` with them; return the number of files published.

        An empty table still publishes: that clears what a killed attempt of the batch left.
        """
        staging = self.staging_uri(batch_id)
        staging_root = self._path(staging)
        if self._fs.exists(staging_root):
            self._fs.delete(staging_root, True)
        files = parquet_by_partition(table)
        for relative_path, data in files:
            self._write_file(f"{staging}/{relative_path}", data)
        moves = plan_publication(batch_id, [relative_path for relative_path, _ in files])
        self.delete_published(batch_id)
        for move in moves:
            target = self._path(f"{self.output_uri}/{move.target}")
            self._fs.mkdirs(target.getParent())
            if not self._fs.rename(self._path(f"{staging}/{move.source}"), target):
                raise OSError(f"could not publish batch {batch_id} file {move.source} to {move.target}")
        if self._fs.exists(staging_root):
            self._fs.delete(staging_root, True)
        return len(moves)

    def delete_published(self, batch_id: int) -> int:
        """Delete the files a (possibly killed) earlier attempt published for `batch_id`."""
        statuses = self._published_statuses(batch_id)
        for status in statuses:
            self._fs.delete(status.getPath(), False)
        return len(statuses)

    def published_files(self, batch_id: int) -> list[str]:
        statuses = self._published_statuses(batch_id)
        return sorted(self._relative(status.getPath(), self._root) for status in statuses)

    def _published_statuses(self, batch_id: int) -> list:
        return list(self._fs.globStatus(self._path(f"{self.output_uri}/{published_glob(batch_id)}")) or [])

    def _write_file(self, uri: str, data: bytes) -> None:
        stream = self._fs.create(self._path(uri), True)
        try:
            for start in range(0, len(data), WRITE_CHUNK_BYTES):
                stream.write(bytearray(data[start : start + WRITE_CHUNK_BYTES]))
        finally:
            stream.close()

    def _relative(self, path, root) -> str:
        root_text = self._fs.makeQualified(root).toString().rstrip("/")
        path_text = self._fs.makeQualified(path).toString()
        if not path_text.startswith(root_text + "/"):
            raise ValueError(f"{path_text} is not under {root_text}")
        return path_text[len(root_text) + 1 :]

    def _path(self, uri: str):
        return self._jvm.org.apache.hadoop.fs.Path(uri)
