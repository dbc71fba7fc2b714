"""One manifest object per batch of uploads, then the raw uploads deleted.

A manifest per image cost a PUT at the ingest, then a GET and a cleanSource action in the
stream: at 100 million images a day each of those is thousands of dollars a month
(docs/operations.md, "fruits cost"). The batch's manifests are therefore written as one
JSON-lines object (one manifest per line, the stream's text source reads it line by line)
under a key derived from the batch's image ids, so a retried batch overwrites its object.

Only once that object is stored are the batch's raw uploads deleted (the exact version the
event announced: a newer upload at the same key is left alone). A failed delete is only
counted: the uploads bucket's lifecycle rule removes the upload later anyway.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from fruits_core import contracts
from fruits_core.lake_uris import join_uri
from fruits_ingest.events import ObjectRef
from fruits_ingest.storage import ObjectStore, StorageError

logger = logging.getLogger("ingest.manifest_group")
JSON_LINES_CONTENT_TYPE = "application/x-ndjson"


@dataclass(frozen=True)
class FlushResult:
    manifests: int
    uploads_deleted: int
    delete_failures: int


@dataclass
class ManifestGroup:
    """The manifests (and the processed uploads) of one batch, in the order they were accepted."""

    key: str
    records: list[dict[str, Any]] = field(default_factory=list)
    # Message (or event) ids whose manifest is in `records`: they fail together if the object is not stored.
    owners: list[str] = field(default_factory=list)
    processed: list[ObjectRef] = field(default_factory=list)

    @classmethod
    def for_refs(cls, refs: list[ObjectRef]) -> ManifestGroup:
        """The group of a batch, keyed by all its uploads (known before any is processed)."""
        if not refs:
            raise ValueError("a manifest group needs at least one upload")
        dt = min(contracts.partition_date(ref.event_time) for ref in refs)
        return cls(contracts.manifest_group_key(dt, [ref.image_id for ref in refs]))

    @property
    def is_shared(self) -> bool:
        """Whether the key names a multi-image object (a single image keeps its own manifest key)."""
        return self.key.endswith(contracts.MANIFEST_GROUP_SUFFIX)

    def add(self, record: dict[str, Any], owner: str) -> None:
        self.records.append(record)
        self.owners.append(owner)

    def done_with(self, ref: ObjectRef) -> None:
        """The upload reached a final outcome (accepted, quarantined, erased): delete it after the flush."""
        self.processed.append(ref)

    def body(self) -> bytes:
        lines = (json.dumps(record, separators=(",", ":")) + "\n" for record in self.records)
        return "".join(lines).encode("utf-8")

    def flush(self, store: ObjectStore, lake_uri: str) -> FlushResult:
        """Store the manifests (StorageError propagates: the owners are retried), then delete the uploads."""
        if self.records:
            store.put(join_uri(lake_uri, self.key), self.body(), JSON_LINES_CONTENT_TYPE)
        deleted = failures = 0
        for ref in self.processed:
            if ref.version_id is None:
                # Unversioned bucket: the key may already hold a newer upload; the lifecycle rule expires it.
                continue
            try:
                store.delete(ref.uri, ref.version_id)
                deleted += 1
            except StorageError as error:
                failures += 1
                logger.warning("raw upload not deleted; the lifecycle rule will", extra={"error": str(error)})
        return FlushResult(len(self.records), deleted, failures)
