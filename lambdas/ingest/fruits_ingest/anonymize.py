"""Pure functions that turn personal upload metadata into the coarse values DESIGN.md allows to keep."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from fruits_core import contracts

_GEOHASH_ALPHABET = "0123456789bcdefghjkmnpqrstuvwxyz"


def subject_id(key: bytes, user_id: str) -> str:
    """Keyed pseudonym of a user: stable for one key, unlinkable to the user id without it."""
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def geohash(lat: float, lon: float, precision: int = contracts.GEOHASH_PRECISION) -> str:
    """Standard geohash (base 32, longitude bit first); precision 4 is a cell of about 39 x 20 km."""
    lat_range = [-90.0, 90.0]
    lon_range = [-180.0, 180.0]
    chars = []
    bits = 0
    bit_count = 0
    use_lon = True
    while len(chars) < precision:
        value, bounds = (lon, lon_range) if use_lon else (lat, lat_range)
        middle = (bounds[0] + bounds[1]) / 2
        if value >= middle:
            bits = (bits << 1) | 1
            bounds[0] = middle
        else:
            bits <<= 1
            bounds[1] = middle
        use_lon = not use_lon
        bit_count += 1
        if bit_count == 5:
            chars.append(_GEOHASH_ALPHABET[bits])
            bits = 0
            bit_count = 0
    return "".join(chars)


def truncate_to_hour(moment: datetime) -> datetime:
    """UTC moment truncated to the hour: keeps time-of-day patterns, drops the exact capture time."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
