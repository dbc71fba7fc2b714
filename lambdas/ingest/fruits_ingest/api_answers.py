"""What the upload API's handlers answer: a refusal with its HTTP status, and the JSON response itself."""

from __future__ import annotations

import json
from typing import Any


class Refused(Exception):
    """The request gets no URL; `status` is the HTTP status to answer, `message` what the caller reads."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An HTTP API answer that no cache keeps: it may carry short-lived signed URLs."""
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store"},
        "body": json.dumps(body),
    }
