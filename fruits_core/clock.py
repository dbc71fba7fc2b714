"""Time helpers (ISO formatting and parsing of record timestamps live in contracts)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current moment, timezone-aware in UTC (one seam for tests to freeze)."""
    return datetime.now(UTC)
