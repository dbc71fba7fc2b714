"""The audit's detectors: each kind of raw identifier is found, and nothing the lake legitimately holds is."""

from __future__ import annotations

import pytest

from fruits_privacy import pii_detectors as pii

FOUND = [
    ("alice.martin@example.org", pii.EMAIL),
    ("contact: Jane.Doe-4711@mail.example.co.uk.", pii.EMAIL),
    ("+33 6 12 34 56 78", pii.PHONE),
    ("0033612345678", pii.PHONE),
    ("call 06.12.34.56.78 now", pii.PHONE),
    ("+1 (0) 415-555-0132", pii.PHONE),
    ("from 192.168.1.20", pii.IPV4),
    ("10.0.0.1", pii.IPV4),
    ("2001:db8::8a2e:370:7334", pii.IPV6),
    ("fe80::1%eth0", pii.IPV6),
    ("48.856613", pii.COORDINATE),
    ("-122.4194", pii.COORDINATE),
    ("pos 48.8566,2.3522", pii.COORDINATE),
    ("490154203237518", pii.DEVICE_ID),  # an IMEI (Luhn-valid)
    ("6F9619FF-8B86-D011-B42D-00C04FC964FF", pii.DEVICE_ID),  # an IDFA
    ("android 9774d56d682e549c", pii.DEVICE_ID),  # an Android ID
]

# Values the lake's records, tables and status files really hold.
LEGITIMATE = [
    "2024-05-01T07:00:00.000Z",
    "2026-11-28T22:35:08.123+00:00",
    "2024-05-01 07:00:00+00:00",
    "dt=2024-05-01",
    "manifests/dt=2024-05-01/3f2a9c0d1e4b5a6978877665544332211.json",
    "3f2a9c0d1e4b5a69788776655443322a",
    "c98612e715d865dc9d110ceaa53862a07102a9e5945f2b22e1b59b8363190e30",
    "u09t",
    "2.4.1",
    "2.0.0-rc.1",
    "mobilenet_v2_1.0_224-int8",
    "litert-int8-96-ef0c3a1b",
    "pca-k4-1a2b3c4d",
    "0f8fad5b-d9cb-469f-a165-70867728950e",  # a Spark query id (lower case UUID)
    "batch 1234 took 5321 ms",
    "490154203237519",  # 15 digits that are no IMEI (Luhn fails)
    "image_not_found",
    "the upload is over the 10485760 byte limit",
    "12345678901",
    "0.125",
    "Job 3 finished: reduce at Stage.scala:42, took 1.234567 s",
]


@pytest.mark.parametrize(("text", "kind"), FOUND)
def test_each_kind_of_identifier_is_found(text, kind):
    assert kind in pii.detect(text)


@pytest.mark.parametrize("text", LEGITIMATE)
def test_what_the_lake_holds_is_no_finding(text):
    assert pii.detect(text) == set()


def test_known_values_are_found_case_insensitively_and_short_ones_ignored():
    known = pii.normalized_known_values(["SM-G991B-R58N90XYZQ", "  ", "ab", "Red Apple"])
    assert known == frozenset({"sm-g991b-r58n90xyzq", "red apple"})
    assert pii.detect("device sm-g991b-r58n90xyzq", known) == {pii.KNOWN_VALUE}
    assert pii.detect("a grab bag", known) == set()


def test_a_number_is_a_coordinate_only_under_a_position_name_and_when_precise():
    assert pii.detect_number("$.lat", 48.856613) == {pii.COORDINATE}
    assert pii.detect_number("column gps_lon", 2.35) == {pii.COORDINATE}
    assert pii.detect_number("$.lat", 48.8) == set()  # coarser than the geohash cell
    assert pii.detect_number("column pca_residual", 0.123456) == set()
    assert pii.detect_number("column features[]", 48.856613) == set()
    assert pii.detect_number("$.latency_ms", 12.75) == set()
