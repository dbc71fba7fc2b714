"""Who uploaded: the subject the upload API bound into the key, never a value the uploader writes.

The presign function hands each authenticated caller a key under `uploads/<sub>/`
(`sub` from the verified Cognito JWT) and signs it into the presigned POST, so
the prefix is proof of identity. The `user-id` metadata, which anyone can set,
is not used for `subject_id` when the ingest requires identity from the key.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from fruits_core import contracts

# fullmatch, never match + "$": "$" also matches before a trailing newline.
_SUBJECT = re.compile(contracts.SUBJECT_PATTERN)
_AUTHENTICATED_KEY = re.compile(
    rf"{re.escape(contracts.UPLOADS_PREFIX)}({contracts.SUBJECT_PATTERN})/[0-9a-f]{{32}}\.(jpg|png|webp)"
)


def is_subject(value: str) -> bool:
    return bool(_SUBJECT.fullmatch(value))


def verified_subject(event: Mapping[str, Any]) -> str | None:
    """The caller's Cognito sub, from the claims the HTTP API's JWT authorizer verified; None without one."""
    claims = (((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}).get("claims")
    subject = (claims or {}).get("sub")
    return subject if isinstance(subject, str) and is_subject(subject) else None


def normalize_subject(value: str) -> str | None:
    """The subject as the ingest reads it from a key (a lower-case Cognito sub), from one pasted
    in upper case or with blanks around it; None when `value` can be no subject at all."""
    candidate = value.strip().lower()
    return candidate if is_subject(candidate) else None


def new_upload_key(subject: str, content_type: str) -> str:
    """A fresh key under the subject's prefix; its name is random, so no phone file name lands in it."""
    if not is_subject(subject):
        raise ValueError("subject is not a Cognito sub (UUID)")
    suffix = contracts.UPLOAD_CONTENT_TYPES[content_type]
    return f"{contracts.upload_prefix(subject)}{uuid.uuid4().hex}{suffix}"


def subject_from_key(key: str) -> str | None:
    """The subject of a key the upload API handed out, or None for any other key."""
    match = _AUTHENTICATED_KEY.fullmatch(key)
    return match.group(1) if match else None
