"""Object storage behind one small interface: S3 (boto3) in the cloud, the filesystem in local mode.

Errors are re-raised as `ObjectNotFound` or `StorageError` with messages that
never contain the object key or path: botocore and OSError messages do (an
EndpointConnectionError prints the full URL), and these exceptions end up in
logs and traces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fruits_core.lake_uris import is_not_found_code, local_path, split_s3, write_atomically

S3_SCHEME = "s3://"
FILE_SCHEME = "file://"
# HEAD/GET of a version that is a delete marker answers 405 MethodNotAllowed: the object is gone.
_DELETE_MARKER_CODES = {"405", "MethodNotAllowed"}
_CHANGED_CODES = {"412", "PreconditionFailed"}


class ObjectNotFound(Exception):
    """The object does not exist (deleted, expired, or never written)."""


class ObjectChanged(Exception):
    """The object no longer has the ETag it was read for (overwritten between two calls)."""


class ObjectExists(Exception):
    """A write that must create the object found it there already (S3 412 on `If-None-Match: *`)."""


class StorageError(Exception):
    """A storage call failed, possibly transiently; retrying the whole message is the remedy."""


class UnreadableMetadata(Exception):
    """A local upload's metadata sidecar is not a JSON object."""


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    metadata: Mapping[str, Any] = field(default_factory=dict)
    etag: str | None = None
    version_id: str | None = None


class ObjectStore(Protocol):
    def head(self, uri: str, version_id: str | None = None) -> ObjectInfo: ...

    def get(
        self, uri: str, max_bytes: int, version_id: str | None = None, etag: str | None = None
    ) -> bytes: ...

    def put(
        self,
        uri: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> None: ...

    def purge(self, uri: str) -> None: ...

    def delete(self, uri: str, version_id: str) -> None: ...


def sidecar_path(path: Path) -> Path:
    """Where local mode keeps an upload's user metadata: hidden, so no listing takes it for an upload."""
    return path.with_name(f".{path.name}.metadata.json")


class RoutingStore:
    """Dispatches each call by URI scheme, so uploads in S3 and a file:// lake (sam local) can meet."""

    def __init__(self, s3: ObjectStore | None = None, file: ObjectStore | None = None) -> None:
        self._stores = {S3_SCHEME: s3, FILE_SCHEME: file}

    def head(self, uri: str, version_id: str | None = None) -> ObjectInfo:
        return self._store(uri).head(uri, version_id=version_id)

    def get(self, uri: str, max_bytes: int, version_id: str | None = None, etag: str | None = None) -> bytes:
        return self._store(uri).get(uri, max_bytes=max_bytes, version_id=version_id, etag=etag)

    def put(
        self,
        uri: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> None:
        self._store(uri).put(uri, data, content_type, metadata=metadata, if_absent=if_absent)

    def purge(self, uri: str) -> None:
        self._store(uri).purge(uri)

    def delete(self, uri: str, version_id: str) -> None:
        self._store(uri).delete(uri, version_id)

    def _store(self, uri: str) -> ObjectStore:
        for scheme, store in self._stores.items():
            if uri.startswith(scheme) and store is not None:
                return store
        raise ValueError("no store configured for this URI scheme (expected s3:// or file://)")


class S3ObjectStore:
    """S3 through a boto3 client (retries per AWS_MAX_ATTEMPTS / AWS_RETRY_MODE, botocore's own settings)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def head(self, uri: str, version_id: str | None = None) -> ObjectInfo:
        response = self._call("HeadObject", self.client.head_object, uri, version_id)
        return ObjectInfo(
            size=int(response["ContentLength"]),
            metadata=dict(response.get("Metadata") or {}),
            etag=(response.get("ETag") or "").strip('"') or None,
            version_id=response.get("VersionId"),
        )

    def get(self, uri: str, max_bytes: int, version_id: str | None = None, etag: str | None = None) -> bytes:
        """The object's bytes; with `etag`, only if it still has that ETag (else ObjectChanged)."""
        condition = {"IfMatch": f'"{etag}"'} if etag else {}
        response = self._call("GetObject", self.client.get_object, uri, version_id, **condition)
        from botocore.exceptions import BotoCoreError

        try:
            # One byte more than allowed: enough to notice an object that grew after the HEAD.
            return response["Body"].read(max_bytes + 1)
        except BotoCoreError as error:
            raise StorageError(f"S3 GetObject body read failed ({type(error).__name__})") from None
        finally:
            response["Body"].close()

    def put(
        self,
        uri: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> None:
        """Store the object; with `if_absent`, a conditional write (the same one PUT request) that
        raises ObjectExists instead of replacing an object already at the key."""
        bucket, key = split_s3(uri)
        extra: dict[str, Any] = {"Metadata": dict(metadata)} if metadata else {}
        if if_absent:
            extra["IfNoneMatch"] = "*"
        try:
            self._call_raw(
                "PutObject",
                lambda: self.client.put_object(
                    Bucket=bucket, Key=key, Body=data, ContentType=content_type, **extra
                ),
            )
        except ObjectChanged:
            raise ObjectExists("S3 PutObject: an object is already at this key") from None

    def purge(self, uri: str) -> None:
        """Delete every version (and delete marker) of exactly this key; nothing to delete is fine."""
        bucket, key = split_s3(uri)
        listing = self._call_raw(
            "ListObjectVersions", lambda: self.client.list_object_versions(Bucket=bucket, Prefix=key)
        )
        for entry in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]:
            if entry["Key"] == key:
                self._call_raw(
                    "DeleteObject",
                    lambda entry=entry: self.client.delete_object(
                        Bucket=bucket, Key=key, VersionId=entry["VersionId"]
                    ),
                )

    def delete(self, uri: str, version_id: str) -> None:
        """Remove one object version for good (no delete marker); S3 does not bill DELETE requests."""
        self._call("DeleteObject", self.client.delete_object, uri, version_id)

    def _call(self, operation: str, method: Any, uri: str, version_id: str | None, **extra: str) -> dict:
        bucket, key = split_s3(uri)
        version = {"VersionId": version_id} if version_id else {}
        return self._call_raw(operation, lambda: method(Bucket=bucket, Key=key, **version, **extra))

    @staticmethod
    def _call_raw(operation: str, call: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", "unknown"))
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if is_not_found_code(code) or code in _DELETE_MARKER_CODES:
                raise ObjectNotFound(f"S3 {operation}: object not found") from None
            if code in _CHANGED_CODES:
                raise ObjectChanged(f"S3 {operation}: object changed since the event") from None
            raise StorageError(f"S3 {operation} failed ({code}, HTTP {status})") from None
        except BotoCoreError as error:
            raise StorageError(f"S3 {operation} failed ({type(error).__name__})") from None


class FileObjectStore:
    """The filesystem as an object store; writes are atomic (hidden temp file, then os.replace)."""

    def head(self, uri: str, version_id: str | None = None) -> ObjectInfo:
        path = local_path(uri)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound("file not found") from None
        except OSError as error:
            raise StorageError(f"file stat failed ({error.strerror})") from None
        return ObjectInfo(size=size, metadata=_read_sidecar(sidecar_path(path)))

    def get(self, uri: str, max_bytes: int, version_id: str | None = None, etag: str | None = None) -> bytes:
        path = local_path(uri)
        try:
            with path.open("rb") as handle:
                return handle.read(max_bytes + 1)
        except FileNotFoundError:
            raise ObjectNotFound("file not found") from None
        except OSError as error:
            raise StorageError(f"file read failed ({error.strerror})") from None

    def put(
        self,
        uri: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> None:
        """Atomic write; `if_absent` checks first (local mode runs one worker, so no race to lose)."""
        path = local_path(uri)
        if if_absent and path.exists():
            raise ObjectExists("file already exists")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if metadata is not None:
                # The sidecar lands first, so whoever sees the file also sees its metadata.
                write_atomically(
                    sidecar_path(path), json.dumps(dict(metadata), sort_keys=True).encode("utf-8")
                )
            write_atomically(path, data)
        except OSError as error:
            raise StorageError(f"file write failed ({error.strerror})") from None

    def purge(self, uri: str) -> None:
        self.delete(uri, "")

    def delete(self, uri: str, version_id: str) -> None:
        """A local file has one version: remove it and its metadata sidecar."""
        path = local_path(uri)
        try:
            path.unlink(missing_ok=True)
            sidecar_path(path).unlink(missing_ok=True)
        except OSError as error:
            raise StorageError(f"file delete failed ({error.strerror})") from None


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        parsed = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise UnreadableMetadata("metadata sidecar is unreadable or not JSON") from None
    if not isinstance(parsed, dict):
        raise UnreadableMetadata("metadata sidecar is not a JSON object")
    return parsed
