"""The lake's objects for the privacy commands: list every version, read one, erase all, write one.

Two drivers behind one small interface: a file:// lake (the local demo and tests) and an
s3:// lake. On a versioned bucket an erasure must remove every version and delete marker,
or the "deleted" object stays readable as a noncurrent version.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fruits_core.lake_uris import is_s3, local_path, split_s3, validate_lake_uri, write_atomically


@dataclass(frozen=True)
class StoredVersion:
    """One stored version of a key (`version_id` None: the file itself, or the current object)."""

    key: str
    version_id: str | None = None


class LakeObjects(Protocol):
    def versions(self, prefix: str) -> Iterator[StoredVersion]: ...

    def read(self, version: StoredVersion) -> bytes: ...

    def write(self, key: str, data: bytes, content_type: str) -> None: ...

    def erase(self, key: str) -> int: ...


class FileLakeObjects:
    """A file:// lake: one version per key; hidden files (temporaries, sidecars) are skipped."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def versions(self, prefix: str) -> Iterator[StoredVersion]:
        base = self.root / prefix
        if base.is_file():  # the prefix is one object's whole key
            yield StoredVersion(prefix)
            return
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(base).parts):
                yield StoredVersion(path.relative_to(self.root).as_posix())

    def read(self, version: StoredVersion) -> bytes:
        return (self.root / version.key).read_bytes()

    def write(self, key: str, data: bytes, content_type: str) -> None:
        write_atomically(self.root / key, data)

    def erase(self, key: str) -> int:
        path = self.root / key
        if not path.is_file():
            return 0
        path.unlink()
        return 1


# DeleteObjects takes at most 1,000 keys per call.
_DELETE_BATCH = 1000


class S3LakeObjects:
    """An s3:// lake (bucket and optional key prefix), every object version included."""

    def __init__(self, client: Any, bucket: str, root: str) -> None:
        self.client = client
        self.bucket = bucket
        self.root = f"{root.strip('/')}/" if root.strip("/") else ""

    def versions(self, prefix: str) -> Iterator[StoredVersion]:
        paginator = self.client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.root + prefix):
            for version in page.get("Versions", []):
                yield StoredVersion(version["Key"][len(self.root) :], version["VersionId"])

    def read(self, version: StoredVersion) -> bytes:
        extra = {"VersionId": version.version_id} if version.version_id else {}
        response = self.client.get_object(Bucket=self.bucket, Key=self.root + version.key, **extra)
        with response["Body"] as body:
            return body.read()

    def write(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.root + key,
            Body=data,
            ContentType=content_type,
            ServerSideEncryption="aws:kms",
        )

    def erase(self, key: str) -> int:
        """Delete every version and delete marker of exactly `key`; the number of data versions removed."""
        full_key = self.root + key
        versions: list[dict[str, str]] = []
        markers: list[dict[str, str]] = []
        for page in self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=full_key
        ):
            versions += [_ref(entry) for entry in page.get("Versions", []) if entry["Key"] == full_key]
            markers += [_ref(entry) for entry in page.get("DeleteMarkers", []) if entry["Key"] == full_key]
        doomed = versions + markers
        for start in range(0, len(doomed), _DELETE_BATCH):
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": doomed[start : start + _DELETE_BATCH], "Quiet": True}
            )
            if response.get("Errors"):
                codes = sorted({error.get("Code", "unknown") for error in response["Errors"]})
                raise RuntimeError(f"S3 DeleteObjects refused {len(response['Errors'])} versions ({codes})")
        return len(versions)


def _ref(entry: dict[str, Any]) -> dict[str, str]:
    return {"Key": entry["Key"], "VersionId": entry["VersionId"]}


def open_lake_objects(lake_uri: str, s3_client: Any = None) -> LakeObjects:
    """The driver for a validated lake URI; boto3 is imported only for an s3:// lake."""
    lake_uri = validate_lake_uri(lake_uri, "--lake")
    if not is_s3(lake_uri):
        return FileLakeObjects(local_path(lake_uri))
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    bucket, root = split_s3(lake_uri + "/")
    return S3LakeObjects(s3_client, bucket, root)
