"""`fruits subject export` (GDPR Art. 15) and `fruits subject erase` (Art. 17) over one lake.

Glue only: the objects come from lake_objects (file:// or s3://), the matching is pure
(subject_plan), the table rows come from a `SubjectTables` (the Iceberg tables, or none).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from fruits_core import contracts
from fruits_core.clock import utc_now
from fruits_core.tombstones import tombstone_record
from fruits_privacy.erasure_audit import erasure_audit_record
from fruits_privacy.lake_objects import LakeObjects
from fruits_privacy.pseudonyms import Pseudonym
from fruits_privacy.subject_plan import (
    CLEAN_IMAGES,
    RECORD_PREFIXES,
    ImageRef,
    SubjectRecords,
    image_ref,
    keys_to_erase,
    match_records,
    parse_records,
    without_subject,
)

EXPORT_SCHEMA_VERSION = 1
JSON_CONTENT_TYPE = "application/json"
JSON_LINES_CONTENT_TYPE = "application/x-ndjson"
# A second scan catches a manifest the stream's archiver moved to archive/ during the first one.
OBJECT_PASSES = 3


class SubjectTables(Protocol):
    """The subject's rows in the lake's tables (features, errors)."""

    def rows(self, pseudonyms: set[str], images: set[ImageRef]) -> dict[str, list[dict[str, Any]]]: ...

    def erase(self, pseudonyms: set[str], images: set[ImageRef]) -> dict[str, int]: ...


class NoTables:
    """A lake without tables (nothing featurized yet): no rows to find or delete."""

    def rows(self, pseudonyms: set[str], images: set[ImageRef]) -> dict[str, list[dict[str, Any]]]:
        return {}

    def erase(self, pseudonyms: set[str], images: set[ImageRef]) -> dict[str, int]:
        return {}


def find_records(objects: LakeObjects, pseudonyms: list[Pseudonym]) -> SubjectRecords:
    """Scan every version of every manifest (live, archived) and quarantine record for the pseudonyms."""
    wanted = {pseudonym.subject_id for pseudonym in pseudonyms}
    return match_records(_scan(objects), wanted)


def export_subject(
    objects: LakeObjects,
    tables: SubjectTables,
    pseudonyms: list[Pseudonym],
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """Everything the lake holds about the subject, as one JSON-ready document."""
    found = find_records(objects, pseudonyms)
    wanted = {pseudonym.subject_id for pseudonym in pseudonyms}
    table_rows = tables.rows(wanted, found.images)
    images = found.images | {ref for rows in table_rows.values() for ref in _refs(rows)}
    existing_images = _existing(objects, keys_to_erase(found, images)[CLEAN_IMAGES])
    return {
        "schema_version": EXPORT_SCHEMA_VERSION,
        "generated_at": contracts.iso_utc(clock()),
        "pseudonyms": [{"subject_id": p.subject_id, "key_version": p.key_version} for p in pseudonyms],
        **{
            kind: [*records.values(), *(line for lines in found.shared[kind].values() for line in lines)]
            for kind, records in found.records.items()
        },
        CLEAN_IMAGES: existing_images,
        **table_rows,
    }


def erase_subject(
    objects: LakeObjects,
    tables: SubjectTables,
    pseudonyms: list[Pseudonym],
    operator: str,
    clock: Callable[[], datetime] = utc_now,
    settle_seconds: float = contracts.ERASURE_SETTLE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Tombstone and first pass, wait out the ingests in flight, second pass, then record.

    The tombstones come first, so an upload the ingest checks from now on is dropped. An
    upload already past its (single) tombstone check may still write its clean image and
    its manifest line; the ingest function cannot run longer than its timeout (the batch's
    manifest flush included), so after `settle_seconds` (at least that timeout) every such
    write is stored and the second pass removes it. This keeps the ingest at one tombstone
    lookup per held key version per upload (docs/gdpr.md). Safe to run again.
    """
    erasure = begin_erasure(objects, tables, pseudonyms, clock)
    sleep(settle_seconds)
    return finish_erasure(objects, tables, erasure, operator)


@dataclass
class Erasure:
    """An erasure between its two passes: who, when, what was removed so far."""

    pseudonyms: list[Pseudonym]
    erased_at: datetime
    counts: dict[str, int]
    images: set[ImageRef] = field(default_factory=set)


def begin_erasure(
    objects: LakeObjects,
    tables: SubjectTables,
    pseudonyms: list[Pseudonym],
    clock: Callable[[], datetime] = utc_now,
) -> Erasure:
    """Write the tombstones, then remove the subject's objects found now (the first pass)."""
    erased_at = clock()
    for pseudonym in pseudonyms:
        objects.write(
            contracts.tombstone_key(pseudonym.subject_id),
            json.dumps(tombstone_record(erased_at)).encode("utf-8"),
            JSON_CONTENT_TYPE,
        )
    erasure = Erasure(pseudonyms, erased_at, dict.fromkeys(keys_to_erase(SubjectRecords(), ()), 0))
    _erase_objects(objects, tables, erasure)
    return erasure


def finish_erasure(
    objects: LakeObjects, tables: SubjectTables, erasure: Erasure, operator: str
) -> dict[str, Any]:
    """After the settle period: remove what the ingests in flight stored since, then the table rows.

    Objects go before table rows, so the stream can no longer featurize an image of the
    subject once its rows are deleted.
    """
    _erase_objects(objects, tables, erasure)
    wanted = {pseudonym.subject_id for pseudonym in erasure.pseudonyms}
    counts = dict(erasure.counts)
    counts.update(tables.erase(wanted, erasure.images))
    request_id = uuid.uuid4().hex
    record = erasure_audit_record(
        request_id,
        erasure.pseudonyms[-1].subject_id,
        [pseudonym.key_version for pseudonym in erasure.pseudonyms],
        counts,
        erasure.erased_at,
        operator,
    )
    objects.write(
        contracts.erasure_audit_key(contracts.partition_date(erasure.erased_at), request_id),
        json.dumps(record, sort_keys=True).encode("utf-8"),
        JSON_CONTENT_TYPE,
    )
    return record


def _erase_objects(objects: LakeObjects, tables: SubjectTables, erasure: Erasure) -> None:
    """One pass: the scan repeats until it finds no record (at most OBJECT_PASSES), lines of
    grouped manifest objects and the clean images they name included."""
    wanted = {pseudonym.subject_id for pseudonym in erasure.pseudonyms}
    for _ in range(OBJECT_PASSES):
        found = find_records(objects, erasure.pseudonyms)
        pass_images = found.images | {
            ref for rows in tables.rows(wanted, found.images).values() for ref in _refs(rows)
        }
        for kind, keys in keys_to_erase(found, pass_images).items():
            erasure.counts[kind] += sum(objects.erase(key) for key in keys)
        for kind, shared in found.shared.items():
            erasure.counts[kind] += sum(_rewrite_without(objects, key, wanted) for key in shared)
        erasure.images |= pass_images
        if not found.any_found():
            break


def _scan(objects: LakeObjects) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for kind, prefix in RECORD_PREFIXES.items():
        for version in objects.versions(prefix):
            if not version.key.endswith(contracts.MANIFEST_FILE_SUFFIXES):
                continue
            for record in parse_records(objects.read(version)):
                yield kind, version.key, record


def _rewrite_without(objects: LakeObjects, key: str, pseudonyms: set[str]) -> int:
    """Remove the subject's lines from a shared manifest object: every version erased, the rest rewritten.

    Returns how many of the subject's lines went. Other people's manifests stay, so their uploads are
    still featurized (the stream has not read this object yet) or stay archived.
    """
    versions = [objects.read(version) for version in objects.versions(key) if version.key == key]
    rest, removed = without_subject(versions, pseudonyms)
    objects.erase(key)
    if rest:
        objects.write(key, rest, JSON_LINES_CONTENT_TYPE)
    return removed


def _refs(rows: list[dict[str, Any]]) -> Iterator[ImageRef]:
    for row in rows:
        ref = image_ref(row)
        if ref is not None:
            yield ref


def _existing(objects: LakeObjects, keys: list[str]) -> list[str]:
    """The clean-image keys that still have a stored version."""
    present = {version.key for version in objects.versions(contracts.CLEAN_PREFIX)}
    return [key for key in keys if key in present]
