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

from fruits_core.errors import ConfigError

# The local lake's key: the same variable `fruits demo` reads.
LOCAL_KEY_ENV = "FRUITS_PSEUDONYM_KEY"


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


def pseudonyms_of(user_id: str, keys: list[HeldKey]) -> list[Pseudonym]:
    """The person's pseudonym under each key, oldest key first (the last one is what the ingest uses now)."""
    if not user_id:
        raise ConfigError("--user-id must not be empty")
    return [Pseudonym(subject_id(key.value, user_id), key.version) for key in keys]
