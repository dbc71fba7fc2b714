"""Clean the last batch's manifests after an available-now run, as Spark's cleanSource would.

Spark archives (or deletes) a batch's source files when the next batch starts: the file source
cleans the files of the last committed batch as it plans the following one. An available-now
run ends after its last batch, so that batch's manifests stayed in manifests/, listed again by
every later run. Once the query has ended, this module does the same for that batch: it reads
which files the batch took from the checkpoint (offsets/<batch> gives the source log entry,
sources/0/<entry>[.compact] lists the files) and moves each one to the archive with Spark's
layout (`<archive dir><the file's path>`), or deletes it. The batch is committed, so its files
are never read again; a file already moved (a run that ended before this cleanup) is skipped.
"""

from __future__ import annotations

import json
import logging

from fruits_core.contracts import archived_uri
from fruits_core.lake_uris import from_spark_uri, join_uri
from streaming_job.config import StreamConfig

log = logging.getLogger(__name__)

SOURCE_LOG = "sources/0"  # the query's only source: the manifests
COMPACT_SUFFIX = ".compact"


# --- Pure: reading the checkpoint's logs -----------------------------------------------------------


def last_committed_batch(commit_names: list[str]) -> int | None:
    """The highest batch id among the file names of the checkpoint's commits/ (None: none committed)."""
    batch_ids = [int(name) for name in commit_names if name.isdigit()]
    return max(batch_ids) if batch_ids else None


def source_log_offset(offset_log_text: str) -> int:
    """The file source's log entry of a batch: the `logOffset` on the last line of offsets/<batch>."""
    return int(json.loads(offset_log_text.strip().splitlines()[-1])["logOffset"])


def source_log_name(log_offset: int, names: list[str]) -> str:
    """The source log file holding an entry: `<n>.compact` when Spark compacted it, else `<n>`."""
    compacted = f"{log_offset}{COMPACT_SUFFIX}"
    return compacted if compacted in names else str(log_offset)


def batch_files(source_log_text: str, log_offset: int) -> list[str]:
    """The file URIs the source log lists for one entry (a compact file lists every earlier one too), raw."""
    entries = [json.loads(line) for line in source_log_text.splitlines()[1:] if line.strip()]
    return [from_spark_uri(entry["path"]) for entry in entries if entry["batchId"] == log_offset]


# --- Glue: the checkpoint and the lake through Hadoop (file:// and s3://, as Spark reaches them) -----


class HadoopPaths:
    def __init__(self, spark) -> None:
        self._jvm = spark._jvm
        self._conf = spark._jsc.hadoopConfiguration()

    def _fs(self, uri: str):
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        return path, path.getFileSystem(self._conf)

    def names(self, uri: str) -> list[str]:
        path, fs = self._fs(uri)
        return [status.getPath().getName() for status in fs.listStatus(path)] if fs.exists(path) else []

    def read_text(self, uri: str) -> str:
        path, fs = self._fs(uri)
        stream = fs.open(path)
        try:
            return self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()

    def exists(self, uri: str) -> bool:
        path, fs = self._fs(uri)
        return bool(fs.exists(path))

    def move(self, source_uri: str, target_uri: str) -> bool:
        source, fs = self._fs(source_uri)
        target, _ = self._fs(target_uri)
        fs.mkdirs(target.getParent())
        return bool(fs.rename(source, target))

    def delete(self, uri: str) -> bool:
        path, fs = self._fs(uri)
        return bool(fs.delete(path, False))

    def sizes(self, dir_uri: str) -> dict[str, int]:
        """Size in bytes of each file directly under `dir_uri`, keyed by its URI as Hadoop spells it."""
        path, fs = self._fs(dir_uri)
        if not fs.exists(path):
            return {}
        return {
            status.getPath().toString(): int(status.getLen())
            for status in fs.listStatus(path)
            if status.isFile()
        }


def batch_file_uris(paths: HadoopPaths, checkpoint_uri: str, batch_id: int) -> list[str]:
    """The manifest files the query's micro-batch `batch_id` took (from its offsets and source log)."""
    log_offset = source_log_offset(paths.read_text(join_uri(checkpoint_uri, "offsets", str(batch_id))))
    source_log = join_uri(checkpoint_uri, SOURCE_LOG)
    log_name = source_log_name(log_offset, paths.names(source_log))
    return batch_files(paths.read_text(join_uri(source_log, log_name)), log_offset)


def clean_last_batch(spark, config: StreamConfig, checkpoint_uri: str) -> int:
    """Archive (or delete) the manifests of the last committed batch of the query whose checkpoint is
    `checkpoint_uri` (the current epoch's); returns how many were cleaned."""
    if config.clean_source == "off":
        return 0
    paths = HadoopPaths(spark)
    batch = last_committed_batch(paths.names(join_uri(checkpoint_uri, "commits")))
    if batch is None:
        return 0
    cleaned = 0
    for file_uri in batch_file_uris(paths, checkpoint_uri, batch):
        if not paths.exists(file_uri):
            continue
        if config.clean_source == "archive":
            done = paths.move(file_uri, archived_uri(config.archive_uri, file_uri))
        else:
            done = paths.delete(file_uri)
        if done:
            cleaned += 1
        else:
            log.warning("could not %s %s (it stays in manifests/)", config.clean_source, file_uri)
    log.info("last batch %d: %d manifest(s) cleaned (%s)", batch, cleaned, config.clean_source)
    return cleaned
