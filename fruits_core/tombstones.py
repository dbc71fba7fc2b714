"""Erasure tombstones: `tombstones/<pseudonym>.json`, written by `fruits subject erase`, read by the ingest.

An upload still in flight when its subject is erased (on the phone's retry queue, in the
ingest queue, or uploaded again) would otherwise bring the subject back. Standard library
only: the ingest Lambda imports it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from fruits_core import contracts


def tombstone_record(erased_at: datetime) -> dict[str, Any]:
    """The tombstone's content: only when the erasure happened (the name is the pseudonym)."""
    return {"schema_version": contracts.TOMBSTONE_SCHEMA_VERSION, "erased_at": contracts.iso_utc(erased_at)}


def refuses_uploads(tombstone: bytes, now: datetime, grace_days: int) -> bool:
    """True while the erasure is younger than the grace period.

    An unreadable tombstone refuses too (fail closed): it only exists because someone asked
    for erasure, and keeping their upload would be the worse error.
    """
    try:
        erased_at = contracts.parse_iso(json.loads(tombstone)["erased_at"])
    except (ValueError, KeyError, TypeError):
        return True
    return now < erased_at + timedelta(days=grace_days)
