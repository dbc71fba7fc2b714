"""Pure detectors of raw identifiers in one value: what `fruits audit-pii` looks for.

Each detector is a regex tuned against what the lake legitimately holds (ISO timestamps,
32/64-hex ids, 4-character geohashes, semver app and model versions, dt=YYYY-MM-DD), so
a finding is worth a look. They return kinds, never the matched text: the audit's output
must not leak what it found.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

EMAIL = "email"
PHONE = "phone"
IPV4 = "ipv4"
IPV6 = "ipv6"
COORDINATE = "precise_coordinate"
DEVICE_ID = "device_id"
KNOWN_VALUE = "known_upload_metadata"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# International (+33 6 12 34 56 78, 0033612345678) or national (06 12 34 56 78, 06-12-34-56-78).
_PHONE = re.compile(
    r"(?<![\w.:+-])(?:(?:\+|00)[1-9]\d{0,2}[ .-]?(?:\(0\)[ .-]?)?(?:\d[ .-]?){6,12}\d"
    r"|0[1-9](?:[ .-]?\d{2}){4})(?![\w-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w.])")
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?(?![\w:])")
# Positions finer than the 4-character geohash (a cell of about 39 x 20 km): a value that is one
# number with 4+ decimals (about 10 m), or a lat/lon pair with 3+ decimals each. A lone number in a
# sentence is not enough (log lines are full of durations such as "took 1.234567 s").
_COORDINATE_VALUE = re.compile(r"\s*-?(?:1[0-7]\d|\d{1,2})\.\d{4,}\s*")
_COORDINATE_PAIR = re.compile(
    r"(?<![\w.:-])-?(?:1[0-7]\d|\d{1,2})\.\d{3,}\s*[,; ]\s*-?(?:1[0-7]\d|\d{1,2})\.\d{3,}(?![\w.:])"
)
# Phone identifiers: an IMEI (15 digits, Luhn), an iOS IDFA/IDFV (upper-case UUID), an Android
# ID (exactly 16 hex digits; the lake's own ids have 32 or 64).
_IMEI = re.compile(r"(?<!\w)\d{15}(?!\w)")
_UPPER_UUID = re.compile(r"(?<![\w-])[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}(?![\w-])")
_ANDROID_ID = re.compile(r"(?<![\w-])[0-9a-f]{16}(?![\w-])")
# Field names under which a number is a position: a float there must not be precise.
_POSITION_FIELD = re.compile(r"(^|[^a-z])(lat|latitude|lon|lng|longitude|gps|coords?|position)([^a-z]|$)")


def detect(text: str, known_values: Iterable[str] = ()) -> set[str]:
    """The kinds of raw identifiers `text` contains (empty: none)."""
    kinds = set()
    if "@" in text and _EMAIL.search(text):
        kinds.add(EMAIL)
    if _PHONE.search(text):
        kinds.add(PHONE)
    if _IPV4.search(text):
        kinds.add(IPV4)
    if ":" in text and any(_is_ipv6(match.group(0)) for match in _IPV6_CANDIDATE.finditer(text)):
        kinds.add(IPV6)
    if _COORDINATE_VALUE.fullmatch(text) or _COORDINATE_PAIR.search(text):
        kinds.add(COORDINATE)
    if _has_device_id(text):
        kinds.add(DEVICE_ID)
    return kinds | detect_known(text, known_values)


def detect_known(text: str, known_values: Iterable[str]) -> set[str]:
    """One of the given raw values, anywhere in `text` (case-insensitive)."""
    lowered = text.lower()
    return {KNOWN_VALUE} if any(value in lowered for value in known_values) else set()


def detect_number(field_name: str, value: float) -> set[str]:
    """A number is only suspect under a position-like field name, with more decimals than allowed."""
    if not _POSITION_FIELD.search(field_name.lower()) or isinstance(value, bool):
        return set()
    return {COORDINATE} if round(value, 1) != value else set()


def normalized_known_values(values: Iterable[str]) -> frozenset[str]:
    """Known raw values as compared (lower case); under 4 characters they would match anything."""
    return frozenset(value.strip().lower() for value in values if len(value.strip()) >= 4)


def _is_ipv6(candidate: str) -> bool:
    try:
        return ipaddress.ip_address(candidate.split("%")[0]).version == 6
    except ValueError:
        return False


def _has_device_id(text: str) -> bool:
    if _UPPER_UUID.search(text) or _ANDROID_ID.search(text):
        return True
    return any(_luhn_valid(match.group(0)) for match in _IMEI.finditer(text))


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0
