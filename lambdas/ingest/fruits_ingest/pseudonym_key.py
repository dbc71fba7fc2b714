"""The HMAC key behind `subject_id`: from the environment (local mode, tests) or an SSM SecureString.

The SSM parameter is read once per container, on first use, then kept in memory.
The key itself never appears in an exception, a log line or a trace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fruits_ingest.config import (
    ENV_PSEUDONYM_KEY_PARAMETER,
    ConfigError,
    IngestConfig,
    validate_pseudonym_key,
)
from fruits_ingest.storage import StorageError

_MISCONFIGURATION_CODES = {
    "ParameterNotFound",
    "ParameterVersionNotFound",
    "AccessDeniedException",
    "InvalidKeyId",
}


class PseudonymKeySource:
    """Hands out the key; fetches it from SSM at most once (unless the fetch failed)."""

    def __init__(self, config: IngestConfig, ssm_client_factory: Callable[[], Any]) -> None:
        self._config = config
        self._ssm_client_factory = ssm_client_factory
        self._key: bytes | None = config.pseudonym_key
        self._lock = threading.Lock()

    def get(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    self._key = self._fetch()
        return self._key

    def _fetch(self) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._config.pseudonym_key_parameter
        try:
            response = self._ssm_client_factory().get_parameter(Name=name, WithDecryption=True)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", "unknown"))
            if code in _MISCONFIGURATION_CODES:
                raise ConfigError(
                    f"cannot read SSM parameter {name} ({ENV_PSEUDONYM_KEY_PARAMETER}): {code}"
                ) from None
            raise StorageError(f"SSM GetParameter failed ({code})") from None
        except BotoCoreError as error:
            raise StorageError(f"SSM GetParameter failed ({type(error).__name__})") from None
        value = response["Parameter"]["Value"].encode("utf-8")
        return validate_pseudonym_key(value, f"SSM parameter {name}")
