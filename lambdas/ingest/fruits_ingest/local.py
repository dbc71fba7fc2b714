"""Local mode: an uploads directory and a file:// lake, processed in-process by the Lambda's own function.

`<uploads_dir>` plays the uploads bucket: an upload is `<uploads_dir>/uploads/<name>`
and its S3 user metadata sits beside it in `.<name>.metadata.json`. The object
"version" that feeds `image_id` is the file's SHA-256, and the upload time is
its modification time. `process` is stateless and safe to call from several
threads at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from fruits_core import contracts
from fruits_core.lake_uris import file_uri
from fruits_ingest.config import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_UPLOAD_BYTES, ConfigError, IngestConfig
from fruits_ingest.events import ObjectRef
from fruits_ingest.imaging import install_pillow_guards
from fruits_ingest.manifest_group import ManifestGroup
from fruits_ingest.processor import IngestOutcome, process_upload
from fruits_ingest.pseudonym_key import PseudonymKey
from fruits_ingest.storage import FILE_SCHEME, FileObjectStore

__all__ = ["IngestOutcome", "LocalIngest", "UploadMissing"]
_HASH_CHUNK_BYTES = 1024 * 1024


class UploadMissing(Exception):
    """`process` was asked for a key that has no upload (a caller error in local mode)."""


class LocalIngest:
    """Upload into a directory and ingest into a file:// lake, exactly as the Lambda would."""

    def __init__(
        self,
        uploads_dir: Path,
        lake_uri: str,
        pseudonym_key: bytes,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        if not lake_uri.startswith(FILE_SCHEME):
            raise ConfigError(f"local mode needs a file:// lake URI, got {lake_uri!r}")
        self.uploads_dir = Path(uploads_dir).resolve()
        self.config = IngestConfig(
            lake_uri=lake_uri,
            pseudonym_key=pseudonym_key,
            max_upload_bytes=max_upload_bytes,
            max_image_pixels=max_image_pixels,
        )
        self._pseudonym_key = PseudonymKey(pseudonym_key)
        self._store = FileObjectStore()
        install_pillow_guards(max_image_pixels)

    def upload(self, data: bytes, metadata: Mapping[str, str], name: str) -> str:
        """Store an upload and its metadata sidecar as the app would PUT it; return its key."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError("upload name must be a plain file name (no path, not starting with '.')")
        key = f"{contracts.UPLOADS_PREFIX}{name}"
        self._store.put(self._uri(key), data, "application/octet-stream", metadata=dict(metadata))
        return key

    def process(self, key: str) -> IngestOutcome:
        """Run the Lambda's processing function on one local upload (its manifest alone in its file)."""
        return process_upload(self._ref(key), self.config, self._store, self._pseudonym_key)

    def process_batch(self, keys: list[str]) -> list[IngestOutcome]:
        """Process uploads as the Lambda processes an SQS batch: their manifests in one JSON-lines file."""
        refs = [self._ref(key) for key in keys]
        group = ManifestGroup.for_refs(refs)
        outcomes = [
            process_upload(ref, self.config, self._store, self._pseudonym_key, group=group) for ref in refs
        ]
        group.flush(self._store, self.config.lake_uri)
        return outcomes

    def _ref(self, key: str) -> ObjectRef:
        path = self._path(key)
        try:
            modified = path.stat().st_mtime
            version = _sha256_of(path)
        except FileNotFoundError:
            raise UploadMissing("the upload does not exist") from None
        return ObjectRef(
            bucket=str(self.uploads_dir),
            key=key,
            uri=file_uri(path),
            event_time=datetime.fromtimestamp(modified, UTC),
            etag=version,
        )

    def _path(self, key: str) -> Path:
        path = (self.uploads_dir / key).resolve()
        if not path.is_relative_to(self.uploads_dir) or path == self.uploads_dir:
            raise ValueError("key must name a file inside the uploads directory")
        return path

    def _uri(self, key: str) -> str:
        return file_uri(self._path(key))


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
