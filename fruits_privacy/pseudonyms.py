"""Every pseudonym a person may carry in the lake: one per pseudonym key version still held.

The ingest writes `subject_id` = HMAC(key, user id) with the key of its time; after a
rotation, older records carry the older key's pseudonym. So a request for access or
erasure computes the pseudonym with every version: SSM keeps the parameter's history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fruits_ingest.anonymize import subject_id
from fruits_ingest.config import validate_pseudonym_key
from fruits_ingest.identity import normalize_subject
from fruits_ingest.metadata import opaque_id_problem

from fruits_core.errors import ConfigError

# The local lake's key: the same variable `fruits demo` reads.
LOCAL_KEY_ENV = "FRUITS_PSEUDONYM_KEY"
# Where the ingest takes the person from: the key's Cognito sub (behind the upload API), or the
# `user-id` metadata (local mode, an ingest without IDENTITY_FROM_KEY).
IDENTITY_FROM_KEY = "key"
IDENTITY_FROM_METADATA = "metadata"


@dataclass(frozen=True, repr=False)
class HeldKey:
    """One key version (None: a local key, which has no version)."""

    value: bytes
    version: str | None

    def __repr__(self) -> str:
        return f"HeldKey(version={self.version!r})"


@dataclass(frozen=True)
class Pseudonym:
    subject_id: str
    key_version: str | None


def local_keys(environ: Mapping[str, str]) -> list[HeldKey]:
    raw = environ.get(LOCAL_KEY_ENV, "")
    if not raw:
        raise ConfigError(f"a file:// lake needs its pseudonym key in {LOCAL_KEY_ENV}")
    return [HeldKey(validate_pseudonym_key(raw.encode("utf-8"), LOCAL_KEY_ENV), None)]


def ssm_keys(ssm_client: Any, parameter: str) -> list[HeldKey]:
    """Every version of the SSM SecureString, oldest first (GetParameterHistory, decrypted)."""
    keys = []
    for page in ssm_client.get_paginator("get_parameter_history").paginate(
        Name=parameter, WithDecryption=True
    ):
        for version in page["Parameters"]:
            value = validate_pseudonym_key(version["Value"].encode("utf-8"), f"SSM parameter {parameter}")
            keys.append(HeldKey(value, str(version["Version"])))
    if not keys:
        raise ConfigError(f"SSM parameter {parameter} has no version")
    return sorted(keys, key=lambda key: int(key.version or 0))


def user_id_as_ingested(raw: str, identity: str) -> str:
    """The user id exactly as the ingest derives it, or ConfigError for one that can match no upload.

    From keys: a Cognito sub, lower-cased as in the keys (a sub pasted in upper case is the
    same person). From metadata: taken verbatim, under the metadata's own rules. The value
    never appears in a message.
    """
    if identity == IDENTITY_FROM_KEY:
        subject = normalize_subject(raw)
        if subject is None:
            raise ConfigError(
                "--user-id is not a Cognito sub (a UUID such as 3f1c0e5a-6d2b-4c8e-9a1f-0b7d2e4c6a81); "
                "behind the upload API the ingest knows people by their sub only, so it can match nothing "
                f"(a lake fed from the user-id metadata: --identity {IDENTITY_FROM_METADATA})"
            )
        return subject
    problem = opaque_id_problem(raw)
    if problem is not None:
        raise ConfigError(f"--user-id {problem}: the ingest refuses such a user-id, so it can match nothing")
    return raw


def pseudonyms_of(user_id: str, keys: list[HeldKey]) -> list[Pseudonym]:
    """The person's pseudonym under each key, oldest key first (the last one is what the ingest uses now)."""
    if not user_id:
        raise ConfigError("--user-id must not be empty")
    return [Pseudonym(subject_id(key.value, user_id), key.version) for key in keys]
