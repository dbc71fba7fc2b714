"""Pure: the audit record of one erasure, which proves the request was served without personal data.

It holds a SHA-256 of the subject's current pseudonym (never the user id nor the pseudonym
itself), so a later request by the same person can be matched to it by recomputing the
hash, while the record alone leads to nobody.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from fruits_core import contracts


def subject_hash(pseudonym: str) -> str:
    return hashlib.sha256(pseudonym.encode("ascii")).hexdigest()


def erasure_audit_record(
    request_id: str,
    pseudonym: str,
    key_versions: list[str | None],
    counts: dict[str, int],
    erased_at: datetime,
    operator: str,
) -> dict[str, Any]:
    return {
        "schema_version": contracts.ERASURE_AUDIT_SCHEMA_VERSION,
        "kind": "erasure",
        "request_id": request_id,
        "subject_hash": subject_hash(pseudonym),
        "key_versions": key_versions,
        "counts": dict(sorted(counts.items())),
        "erased_at": contracts.iso_utc(erased_at),
        "operator": operator,
    }
