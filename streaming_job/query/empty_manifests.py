"""0-byte manifests of a micro-batch become error rows (Spark's file scan yields no row for them).

Spark skips empty files whatever the format, so a 0-byte manifest would vanish
without a trace. The driver finds them among the files the batch took (its
offsets and the file source's log, in the checkpoint) and the sizes of their
folders' listing, one LIST per folder, and adds one `malformed_manifest` error row
each, committed with the batch's other error rows: once per batch (the sink's
query and batch id), and once across re-reads (the row's error_key, or its
image_id when the file name carries one).
"""

from __future__ import annotations

import re
from datetime import datetime

import pyarrow as pa

from fruits_core import contracts
from fruits_lake.schemas import ERRORS_ARROW_SCHEMA
from streaming_job.checkpoints.source_cleanup import HadoopPaths, batch_file_uris
from streaming_job.monitoring.backlog import path_key

EMPTY_DETAIL = "manifest is empty (0 bytes)"
# A single upload's manifest is `<image_id>.json`: the error row names that image.
NAMED_MANIFEST = re.compile(r"^([0-9a-f]{32})\.json$")


def parent_uri(uri: str) -> str:
    return uri.rsplit("/", 1)[0]


def empty_files(batch_uris: list[str], folder_sizes: dict[str, int]) -> list[str]:
    """The batch's files listed with 0 bytes (`folder_sizes`: URI -> size; a vanished file is left out)."""
    sizes = {path_key(uri): size for uri, size in folder_sizes.items()}
    return [uri for uri in batch_uris if sizes.get(path_key(uri)) == 0]


def empty_manifest_errors(file_uris: list[str], processed_at: datetime) -> tuple[pa.Table, pa.Table]:
    """(error rows, their owners) for 0-byte manifests: malformed_manifest, keyed by their path.

    The owners (subject_id, ingested_at) are unknown: never dropped as an erased subject's, and
    looked up as a possible repeat once another query has written (sink.repeated_errors).
    """
    names = [uri.rsplit("/", 1)[-1] for uri in file_uris]
    ids = [match.group(1) if (match := NAMED_MANIFEST.match(name)) else None for name in names]
    keys = [contracts.error_key(contracts.manifest_relative_path(uri), "") for uri in file_uris]
    count = len(file_uris)
    errors = pa.table(
        {
            "image_id": ids,
            "image_uri": [None] * count,
            "reason": [contracts.FeaturizeErrorReason.MALFORMED_MANIFEST.value] * count,
            "detail": [EMPTY_DETAIL] * count,
            "processed_at": [processed_at] * count,
            "error_key": keys,
        }
    ).cast(ERRORS_ARROW_SCHEMA)
    owners = pa.table(
        {
            "subject_id": pa.nulls(count, pa.string()),
            "ingested_at": pa.nulls(count, pa.timestamp("us", tz="UTC")),
        }
    )
    return errors, owners


def empty_manifests_of_batch(paths: HadoopPaths, checkpoint_uri: str, batch_id: int) -> list[str]:
    """The 0-byte manifests micro-batch `batch_id` took: one listing per folder of its files."""
    taken = batch_file_uris(paths, checkpoint_uri, batch_id)
    sizes: dict[str, int] = {}
    for folder in sorted({parent_uri(uri) for uri in taken}):
        sizes.update(paths.sizes(folder))
    return empty_files(taken, sizes)
