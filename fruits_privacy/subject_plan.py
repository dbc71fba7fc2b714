"""Pure: which of the lake's records belong to a subject, and which keys an erasure removes.

No index maps a person to their objects: the records are scanned and matched on the
pseudonym they carry (`subject_id`, under any held key version). Clean images and
live/archived manifest twins are then derived from each record's `dt` and `image_id`
with the contracts' key layout, so an image is found even when only one of its records is left.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fruits_core import contracts

MANIFESTS = "manifests"
ARCHIVED_MANIFESTS = "archived_manifests"
QUARANTINE_RECORDS = "quarantine_records"
CLEAN_IMAGES = "clean_images"
# Where each kind of record lives, scanned in this order.
RECORD_PREFIXES = {
    MANIFESTS: contracts.MANIFESTS_PREFIX,
    ARCHIVED_MANIFESTS: contracts.MANIFESTS_ARCHIVE_PREFIX,
    QUARANTINE_RECORDS: contracts.QUARANTINE_PREFIX,
}


@dataclass(frozen=True)
class ImageRef:
    """One image of the subject: enough to name its clean image and its manifest."""

    dt: str
    image_id: str


@dataclass
class SubjectRecords:
    """The subject's records by kind ({key: record}) and the images they name."""

    records: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {kind: {} for kind in RECORD_PREFIXES}
    )
    images: set[ImageRef] = field(default_factory=set)
    # Batch manifest objects (manifest_group: other people's manifests too) holding the subject's lines,
    # by kind: {key: [the subject's records]}. They are rewritten without those lines, never deleted whole.
    shared: dict[str, dict[str, list[dict[str, Any]]]] = field(
        default_factory=lambda: {kind: {} for kind in RECORD_PREFIXES}
    )

    def any_found(self) -> bool:
        return any(self.records.values()) or any(self.shared.values())


def parse_record(data: bytes) -> dict[str, Any] | None:
    """A JSON object record, or None for anything else (a foreign or truncated file is no match)."""
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def parse_records(data: bytes) -> list[dict[str, Any]]:
    """The records of an object: one JSON document, or JSON lines (a batch's manifests)."""
    whole = parse_record(data)
    if whole is not None:
        return [whole]
    return [record for line in data.splitlines() if (record := parse_record(line)) is not None]


def is_shared_key(key: str) -> bool:
    """A batch's manifest object (contracts.manifest_group_key), holding several uploads' manifests."""
    return key.endswith(contracts.MANIFEST_GROUP_SUFFIX)


def without_subject(versions: Iterable[bytes], pseudonyms: set[str]) -> tuple[bytes, int]:
    """A shared object's lines, from all its versions (each once), less the subject's; and how many went."""
    kept: dict[bytes, None] = {}
    removed: set[bytes] = set()
    for data in versions:
        for line in data.splitlines():
            record = parse_record(line)
            if record is not None and record.get("subject_id") in pseudonyms:
                removed.add(line)
            elif line.strip():
                kept[line] = None
    return b"".join(line + b"\n" for line in kept), len(removed)


def match_records(scanned: Iterable[tuple[str, str, dict[str, Any]]], pseudonyms: set[str]) -> SubjectRecords:
    """Keep the (kind, key, record) whose subject_id is one of the pseudonyms."""
    found = SubjectRecords()
    for kind, key, record in scanned:
        if record.get("subject_id") not in pseudonyms:
            continue
        if is_shared_key(key):
            found.shared[kind].setdefault(key, []).append(record)
        else:
            found.records[kind][key] = record
        if kind != QUARANTINE_RECORDS:
            ref = image_ref(record)
            if ref is not None:
                found.images.add(ref)
    return found


def image_ref(record: dict[str, Any]) -> ImageRef | None:
    """The image a manifest or table row names, if its dt and image_id are well-formed."""
    dt, image_id = record.get("dt"), record.get("image_id")
    if not isinstance(dt, str) or not isinstance(image_id, str):
        return None
    if not contracts.is_calendar_date(dt) or re.fullmatch(contracts.IMAGE_ID_PATTERN, image_id) is None:
        return None
    return ImageRef(dt, image_id)


def keys_to_erase(found: SubjectRecords, images: Iterable[ImageRef]) -> dict[str, list[str]]:
    """Every key to remove, by kind: the matched records plus each image's clean image and live manifest.

    Shared (batch) manifest objects are not in it: they are rewritten without the subject's lines.
    """
    all_images = set(images) | found.images
    manifests = set(found.records[MANIFESTS]) | {
        contracts.manifest_key(ref.dt, ref.image_id) for ref in all_images
    }
    return {
        CLEAN_IMAGES: sorted(contracts.clean_image_key(ref.dt, ref.image_id) for ref in all_images),
        MANIFESTS: sorted(manifests),
        ARCHIVED_MANIFESTS: sorted(found.records[ARCHIVED_MANIFESTS]),
        QUARANTINE_RECORDS: sorted(found.records[QUARANTINE_RECORDS]),
    }
