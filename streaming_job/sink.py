"""Exactly-once publication of a micro-batch's Parquet output, keyed by batch id.

Spark re-runs a micro-batch whose commit was not logged (a killed driver) with
the same offsets, hence the same rows. Each batch is therefore written to a
staging directory first, then every staged file is moved to a name derived
from the batch id alone: `dt=<dt>/part-<batch_id:010d>-<n:05d>.parquet`.
Before moving, any file of the same batch id left by an earlier attempt is
deleted, so publishing a batch twice leaves exactly one copy of its rows.

Listing, renames and deletes go through Hadoop's FileSystem API in the JVM, so
the same code runs on `file://` (local mode) and `s3://` (EMRFS).
The staging area's leading underscore hides it from Spark and pyarrow readers.
"""

from __future__ import annotations

from dataclasses import dataclass

from fruits_ingest import contracts

from streaming_job.config import join_uri

STAGING_DIR = "_staging"
PARTITION_PREFIX = f"{contracts.FEATURES_PARTITION_COLUMN}="


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

    def write(self, df, batch_id: int) -> int:
        """Stage `df` (partitioned by dt) and publish it; return the number of files published."""
        staging = self.staging_uri(batch_id)
        df.write.mode("overwrite").partitionBy(contracts.FEATURES_PARTITION_COLUMN).parquet(staging)
        return self.publish(batch_id)

    def publish(self, batch_id: int) -> int:
        """Replace whatever an earlier attempt published for `batch_id` with the staged files."""
        staging_root = self._path(self.staging_uri(batch_id))
        staged = self._list_relative(staging_root) if self._fs.exists(staging_root) else []
        moves = plan_publication(batch_id, staged)
        self.delete_published(batch_id)
        for move in moves:
            source = self._path(f"{self.staging_uri(batch_id)}/{move.source}")
            target = self._path(f"{self.output_uri}/{move.target}")
            self._fs.mkdirs(target.getParent())
            if not self._fs.rename(source, target):
                raise OSError(f"could not publish batch {batch_id} file {move.source} to {move.target}")
        if self._fs.exists(staging_root):
            self._fs.delete(staging_root, True)
        return len(moves)

    def delete_published(self, batch_id: int) -> int:
        """Delete the files a (possibly killed) earlier attempt published for `batch_id`."""
        statuses = self._fs.globStatus(self._path(f"{self.output_uri}/{published_glob(batch_id)}")) or []
        for status in statuses:
            self._fs.delete(status.getPath(), False)
        return len(statuses)

    def published_files(self, batch_id: int) -> list[str]:
        statuses = self._fs.globStatus(self._path(f"{self.output_uri}/{published_glob(batch_id)}")) or []
        return sorted(self._relative(status.getPath(), self._root) for status in statuses)

    def _list_relative(self, root) -> list[str]:
        iterator = self._fs.listFiles(root, True)
        relative = []
        while iterator.hasNext():
            relative.append(self._relative(iterator.next().getPath(), root))
        return relative

    def _relative(self, path, root) -> str:
        root_text = self._fs.makeQualified(root).toString().rstrip("/")
        path_text = self._fs.makeQualified(path).toString()
        if not path_text.startswith(root_text + "/"):
            raise ValueError(f"{path_text} is not under {root_text}")
        return path_text[len(root_text) + 1 :]

    def _path(self, uri: str):
        return self._jvm.org.apache.hadoop.fs.Path(uri)
