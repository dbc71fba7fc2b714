"""The manifest checks the stream applies, as pure functions of the contract (fast, no Spark)."""

from __future__ import annotations

import pytest

from fruits_core import contracts

LAKE = "file:///data/fruits-lake"
IMAGE_ID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("2024-05-01", True),
        ("2024-02-29", True),
        ("2023-02-29", False),
        ("2024-13-45", False),
        ("2024-00-10", False),
        ("2024-05-01\n", False),
        ("2024/05/01", False),
        ("../../escape", False),
        ("", False),
    ],
)
def test_only_a_real_calendar_day_is_a_date(text, ok):
    assert contracts.is_calendar_date(text) is ok


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        (f"{LAKE}/{contracts.clean_image_key('2024-05-01', IMAGE_ID)}", True),
        (f"{LAKE}/clean/dt=2024-05-01/{IMAGE_ID}.jpg\n", False),
        (f"{LAKE}/clean/dt%3D2024-05-01/{IMAGE_ID}.jpg", True),
        (f"{LAKE}/clean/dt%3d2024-05-01/{IMAGE_ID}.jpg", False),
        ("file:///etc/passwd", False),
        (f"{LAKE}/manifests/dt=2024-05-01/{IMAGE_ID}.jpg", False),
        (f"{LAKE}/clean/dt=2024-05-01/../../../etc/{IMAGE_ID}.jpg", False),
        (f"{LAKE}/clean/dt=2024-05-01/%2e%2e/{IMAGE_ID}.jpg", False),
        (f"{LAKE}-other/clean/dt=2024-05-01/{IMAGE_ID}.jpg", False),
        (f"fileX///data/fruits-lake/clean/dt=2024-05-01/{IMAGE_ID}.jpg", False),
        (f"{LAKE}/clean/dt=2024-05-01/{IMAGE_ID.upper()}.jpg", False),
    ],
)
def test_an_image_uri_must_name_a_clean_image_of_the_lake(uri, ok):
    assert contracts.is_clean_image_uri(LAKE, uri) is ok


def test_the_clean_prefix_of_an_s3_lake_is_matched_literally():
    lake = "s3://fruits-dev.lake/prefix"
    key = contracts.clean_image_key("2024-05-01", IMAGE_ID)
    assert contracts.is_clean_image_uri(lake + "/", f"{lake}/{key}")
    assert not contracts.is_clean_image_uri(lake, f"s3://fruits-devXlake/prefix/{key}")
