"""Erasure tombstones: how long they stop uploads, and the ingest setting that sizes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_core.tombstones import refuses_uploads, tombstone_record
from tests.privacy.subject_testkit import PSEUDONYM_KEY, SUBJECTS, lake_files, pseudonym

ERASED_AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


def tombstone(erased_at: datetime) -> bytes:
    return json.dumps(tombstone_record(erased_at)).encode()


def test_a_tombstone_refuses_uploads_for_the_grace_period_only():
    assert refuses_uploads(tombstone(ERASED_AT), ERASED_AT + timedelta(days=29, hours=23), grace_days=30)
    assert not refuses_uploads(tombstone(ERASED_AT), ERASED_AT + timedelta(days=30), grace_days=30)
    assert not refuses_uploads(tombstone(ERASED_AT), ERASED_AT + timedelta(days=2), grace_days=1)


@pytest.mark.parametrize("content", [b"", b"{}", b"[]", b'{"erased_at": "yesterday"}', b"\xff"])
def test_an_unreadable_tombstone_refuses_fail_closed(content):
    assert refuses_uploads(content, ERASED_AT + timedelta(days=3650), grace_days=30)


def test_the_tombstone_holds_only_the_erasure_time():
    assert tombstone_record(ERASED_AT) == {
        "schema_version": contracts.TOMBSTONE_SCHEMA_VERSION,
        "erased_at": "2026-03-01T12:00:00.000Z",
    }
    with pytest.raises(ValueError):
        contracts.tombstone_key("../../etc/passwd")


def test_the_grace_period_is_an_ingest_setting_validated_at_start():
    from fruits_ingest.config import ENV_ERASURE_GRACE_DAYS, load_config

    base = {"LAKE_URI": "file:///tmp/lake", "PSEUDONYM_KEY": PSEUDONYM_KEY.decode()}
    assert load_config(base).erasure_grace_days == contracts.DEFAULT_ERASURE_GRACE_DAYS
    assert load_config({**base, ENV_ERASURE_GRACE_DAYS: "7"}).erasure_grace_days == 7
    for bad in ("0", "3651", "week"):
        with pytest.raises(ConfigError, match=ENV_ERASURE_GRACE_DAYS):
            load_config({**base, ENV_ERASURE_GRACE_DAYS: bad})


def test_an_expired_tombstone_lets_the_subject_upload_again(tmp_path, sample_image_paths):
    from fruits_ingest.local import LocalIngest

    lake_dir = tmp_path / "lake"
    alice = SUBJECTS["alice"]
    key = lake_dir / contracts.tombstone_key(pseudonym(alice[contracts.META_USER_ID]))
    key.parent.mkdir(parents=True)
    ingest = LocalIngest(tmp_path / "uploads", lake_dir.as_uri(), PSEUDONYM_KEY)
    image = sample_image_paths[0].read_bytes()
    # GIVEN alice was erased 29 days ago THEN her upload is dropped
    key.write_bytes(tombstone(datetime.now(UTC) - timedelta(days=29)))
    dropped = ingest.process(ingest.upload(image, alice, "IMG_1.jpg"))
    assert (dropped.status, dropped.reason) == ("skipped", contracts.SkipReason.SUBJECT_ERASED)
    assert set(lake_files(lake_dir)) == {contracts.tombstone_key(pseudonym(alice[contracts.META_USER_ID]))}
    # GIVEN the erasure is 31 days old (the default grace period is 30) THEN she is a user again
    key.write_bytes(tombstone(datetime.now(UTC) - timedelta(days=31)))
    assert ingest.process(ingest.upload(image, alice, "IMG_2.jpg")).status == "accepted"
