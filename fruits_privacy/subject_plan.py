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


def parse_record(data: bytes) -> dict[str, Any] | None:
    """A JSON object record, or None for anything else (a foreign or truncated file is no match)."""
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def match_records(scanned: Iterable[tuple[str, str, dict[str, Any]]], pseudonyms: set[str]) -> SubjectRecords:
    """Keep the (kind, key, record) whose subject_id is one of the pseudonyms."""
    found = SubjectRecords()
    for kind, key, record in scanned:
        if record.get("subject_id") not in pseudonyms:
            continue
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
    """Every key to remove, by kind: the matched records plus each image's clean image and live manifest."""
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
