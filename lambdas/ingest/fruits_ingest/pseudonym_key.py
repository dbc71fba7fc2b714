"""The HMAC key behind `subject_id`: from the environment (local mode, tests) or an SSM SecureString.

The SSM parameter's history is read on first use, then again once its cache TTL
has passed, so a rotation reaches every container within the TTL; the newest
version is the key, and its number travels into each manifest (`key_version`).
The older versions still held are kept too: a tombstone written under an older
key must still refuse the person's uploads after a rotation. If a refresh
fails transiently, the cached key is kept and the read retried on the next use.
The key itself never appears in an exception, a log line or a trace.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fruits_ingest.config import (
    ENV_PSEUDONYM_KEY_PARAMETER,
    ConfigError,
    IngestConfig,
    validate_pseudonym_key,
)
from fruits_ingest.storage import StorageError

logger = logging.getLogger("ingest.pseudonym_key")
_MISCONFIGURATION_CODES = {
    "ParameterNotFound",
    "ParameterVersionNotFound",
    "AccessDeniedException",
    "InvalidKeyId",
}


@dataclass(frozen=True, repr=False)
class PseudonymKey:
    """The key and its version (the SSM parameter version; None for a key from the environment).

    `previous`: the older key versions still held, whose pseudonyms name older tombstones.
    """

    value: bytes
    version: str | None = None
    previous: tuple[bytes, ...] = ()

    @property
    def held(self) -> tuple[bytes, ...]:
        """Every key version a tombstone may have been written under, the current one first."""
        return (self.value, *self.previous)

    def __repr__(self) -> str:
        return f"PseudonymKey(version={self.version!r})"


class PseudonymKeySource:
    """Hands out the key; fetches it from SSM when missing or older than the configured TTL."""

    def __init__(
        self,
        config: IngestConfig,
        ssm_client_factory: Callable[[], Any],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._ssm_client_factory = ssm_client_factory
        self._clock = clock
        self._key: PseudonymKey | None = (
            PseudonymKey(config.pseudonym_key) if config.pseudonym_key is not None else None
        )
        self._fetched_at = clock()
        self._lock = threading.Lock()

    def get(self) -> PseudonymKey:
        if self._key is None or self._expired():
            with self._lock:
                if self._key is None or self._expired():
                    self._refresh()
        assert self._key is not None
        return self._key

    def _expired(self) -> bool:
        from_ssm = self._config.pseudonym_key is None
        return from_ssm and self._clock() - self._fetched_at >= self._config.pseudonym_key_ttl_seconds

    def _refresh(self) -> None:
        try:
            self._key = self._fetch()
        except StorageError:
            if self._key is None:
                raise
            logger.warning("pseudonym key refresh failed; the cached key stays in use until the next try")
            return
        self._fetched_at = self._clock()

    def _fetch(self) -> PseudonymKey:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._config.pseudonym_key_parameter
        try:
            pages = (
                self._ssm_client_factory()
                .get_paginator("get_parameter_history")
                .paginate(Name=name, WithDecryption=True)
            )
            versions = [version for page in pages for version in page["Parameters"]]
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", "unknown"))
            if code in _MISCONFIGURATION_CODES:
                raise ConfigError(
                    f"cannot read SSM parameter {name} ({ENV_PSEUDONYM_KEY_PARAMETER}): {code}"
                ) from None
            raise StorageError(f"SSM GetParameterHistory failed ({code})") from None
        except BotoCoreError as error:
            raise StorageError(f"SSM GetParameterHistory failed ({type(error).__name__})") from None
        if not versions:
            raise ConfigError(f"SSM parameter {name} ({ENV_PSEUDONYM_KEY_PARAMETER}) has no version")
        ordered = sorted(versions, key=lambda version: int(version["Version"]))
        values = [
            validate_pseudonym_key(version["Value"].encode("utf-8"), f"SSM parameter {name}")
            for version in ordered
        ]
        previous = tuple(dict.fromkeys(value for value in reversed(values[:-1]) if value != values[-1]))
        return PseudonymKey(values[-1], str(ordered[-1]["Version"]), previous)
