"""Per-user daily upload quota, counted where the user cannot reach: in the upload API, in DynamoDB.

Each presigned POST the API hands out takes one unit of the caller's day, and the
ingest accepts one upload per presigned POST (the key's first version), so the quota
bounds the uploads a user can have accepted per day. One conditional UpdateItem per
request: the count never passes the limit, however many requests race. The item is
named by a hash of the Cognito sub and the day, and expires (TTL) two days later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fruits_core.clock import utc_now

COUNT_ATTRIBUTE = "uploads"
EXPIRES_ATTRIBUTE = "expires_at"
_KEEP_FOR = timedelta(days=2)


def quota_item_key(subject: str, day: str) -> str:
    """The counter's key: the sub is hashed, so the table holds no Cognito id in clear."""
    return f"{hashlib.sha256(subject.encode('utf-8')).hexdigest()}#{day}"


class UploadQuota:
    """`take(subject)`: True and one unit counted, or False when today's quota is used up."""

    def __init__(
        self, client: Any, table: str, daily_limit: int, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._client = client
        self._table = table
        self._daily_limit = daily_limit
        self._clock = clock

    def take(self, subject: str) -> bool:
        now = self._clock()
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": quota_item_key(subject, now.date().isoformat())}},
                UpdateExpression=f"ADD {COUNT_ATTRIBUTE} :one SET {EXPIRES_ATTRIBUTE} = :expires",
                ConditionExpression=f"attribute_not_exists({COUNT_ATTRIBUTE}) OR {COUNT_ATTRIBUTE} < :limit",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(self._daily_limit)},
                    ":expires": {"N": str(int((now + _KEEP_FOR).timestamp()))},
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True
