"""Read, write and list objects by URI: `file://` locally, `s3://` on AWS.

The job never branches on where the lake lives: every component goes through
these few functions, so local mode and the cloud differ only by URI.
A bare filesystem path is accepted wherever a `file://` URI is. The URIs are parsed and
built by `fruits_core.lake_uris` (the one parser); this module does the I/O.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# Parsing is fruits_core's (the ingest and the table layer parse the same way); the job's callers
# reach it through this module with the I/O.
from fruits_core.lake_uris import (
    UnsupportedUriError,
    file_uri,
    is_missing_object_error,
    is_s3,
    local_path,
    s3_uri,
    split_s3,
    to_uri,
    write_atomically,
)

__all__ = [
    "UnsupportedUriError",
    "exists",
    "holds_anything",
    "is_s3",
    "list_sizes",
    "list_uris",
    "local_path",
    "read_bytes",
    "s3_client",
    "split_s3",
    "to_uri",
    "write_bytes",
]

# Names that writers use for in-flight files (and Spark ignores): never listed.
HIDDEN_NAME_PREFIXES = (".", "_")


def s3_client(max_pool_connections: int = 10, read_timeout_seconds: float = 60.0):
    """A new S3 client (region and endpoint from the usual AWS environment variables).

    Long-lived readers (`image_io.ImageReader`) keep theirs; these helpers make
    one per call, which keeps them correct under moto and across forks.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        read_timeout=read_timeout_seconds,
    )
    return boto3.client("s3", config=config)


def read_bytes(uri: str) -> bytes:
    """The object's bytes; FileNotFoundError when it does not exist (both schemes)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        try:
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as error:
            if is_missing_object_error(error):
                raise FileNotFoundError(f"no such object: {uri}") from error
            raise
    return local_path(uri).read_bytes()


def write_bytes(uri: str, data: bytes) -> None:
    """Write an object whole. Locally: to a hidden temp name, then an atomic rename."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        return
    write_atomically(local_path(uri), data)


def exists(uri: str) -> bool:
    """Whether an object (or, locally, a file or directory) exists at the URI."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        try:
            s3_client().head_object(Bucket=bucket, Key=key)
        except Exception as error:
            if is_missing_object_error(error):
                return False
            raise
        return True
    return local_path(uri).exists()


def list_uris(prefix_uri: str, suffix: str = "") -> list[str]:
    """Sorted URIs of the objects under a directory-like prefix whose names end with `suffix`.

    Hidden names (starting with `.` or `_`: files being written, Spark markers) are skipped.
    """
    if is_s3(prefix_uri):
        return _list_s3(prefix_uri, suffix)
    root = local_path(prefix_uri)
    if not root.is_dir():
        return []
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(HIDDEN_NAME_PREFIXES)]
        for name in files:
            if name.endswith(suffix) and not name.startswith(HIDDEN_NAME_PREFIXES):
                found.append(file_uri(Path(directory, name)))
    return sorted(found)


def holds_anything(prefix_uri: str) -> bool:
    """Whether any object (or, locally, any entry) lies under a directory-like prefix: one LIST at most."""
    if is_s3(prefix_uri):
        bucket, prefix = split_s3(prefix_uri)
        try:
            page = s3_client().list_objects_v2(
                Bucket=bucket, Prefix=prefix.rstrip("/") + "/" if prefix else "", MaxKeys=1
            )
        except Exception as error:
            if is_missing_object_error(error):
                return False
            raise
        return page.get("KeyCount", 0) > 0
    root = local_path(prefix_uri)
    return root.is_dir() and any(root.iterdir())


def list_sizes(prefix_uri: str, suffix: str = "") -> dict[str, int]:
    """{URI: size in bytes} of the objects under a prefix whose names end with `suffix`, hidden names skipped.

    Listed natively (os.scandir; one S3 LIST per 1,000 keys), not through Hadoop:
    iterating a Hadoop listing from Python costs several py4j round trips per file.
    """
    if is_s3(prefix_uri):
        bucket, prefix = split_s3(prefix_uri)
        pages = (
            s3_client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/" if prefix else "")
        )
        return {
            s3_uri(bucket, item["Key"]): int(item["Size"])
            for page in pages
            for item in page.get("Contents", [])
            if _is_listed_name(item["Key"].rsplit("/", 1)[-1], suffix)
        }
    root = local_path(prefix_uri)
    if not root.is_dir():
        return {}
    sizes = {}
    pending = [root]
    while pending:
        # The source's cleanup archives or deletes files (and folders) while the listing runs: what is
        # gone between the listing and its stat is no longer there to count, not an error.
        try:
            listing = os.scandir(pending.pop())
        except FileNotFoundError:
            continue
        with listing:
            for entry in listing:
                if entry.name.startswith(HIDDEN_NAME_PREFIXES):
                    continue
                if entry.is_dir():
                    pending.append(Path(entry.path))
                elif _is_listed_name(entry.name, suffix):
                    with contextlib.suppress(FileNotFoundError):
                        sizes[file_uri(entry.path)] = entry.stat().st_size
    return sizes


def _is_listed_name(name: str, suffix: str) -> bool:
    return bool(name) and name.endswith(suffix) and not name.startswith(HIDDEN_NAME_PREFIXES)


def _list_s3(prefix_uri: str, suffix: str) -> list[str]:
    bucket, prefix = split_s3(prefix_uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    paginator = s3_client().get_paginator("list_objects_v2")
    found = []
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            name = key.rsplit("/", 1)[-1]
            if key.endswith(suffix) and name and not name.startswith(HIDDEN_NAME_PREFIXES):
                found.append(s3_uri(bucket, key))
    return sorted(found)
