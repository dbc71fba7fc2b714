"""The pseudonym key's cache: a rotation reaches a warm container within the TTL, with its version."""

from __future__ import annotations

import boto3
import pytest
from fruits_ingest.config import ConfigError, IngestConfig
from fruits_ingest.pseudonym_key import PseudonymKeySource
from fruits_ingest.storage import StorageError

from .helpers import LAKE_URI

PARAMETER = "/fruits/test/pseudonym-key"
TTL = 300


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def source(aws):
    aws.ssm.put_parameter(Name=PARAMETER, Value="first-key-0123456789abcdef", Type="SecureString")
    clock = Clock()
    config = IngestConfig(lake_uri=LAKE_URI, pseudonym_key_parameter=PARAMETER, pseudonym_key_ttl_seconds=TTL)
    return PseudonymKeySource(config, lambda: boto3.client("ssm"), clock=clock), clock


def _rotate(aws, value: str = "second-key-0123456789abcdef") -> None:
    aws.ssm.put_parameter(Name=PARAMETER, Value=value, Type="SecureString", Overwrite=True)


def test_key_carries_the_parameter_version_and_is_cached_within_the_ttl(aws, source):
    keys, clock = source
    first = keys.get()
    _rotate(aws)
    clock.now += TTL - 1
    assert keys.get() == first
    assert (first.value, first.version) == (b"first-key-0123456789abcdef", "1")


def test_rotation_is_picked_up_after_the_ttl(aws, source):
    keys, clock = source
    keys.get()
    _rotate(aws)
    clock.now += TTL
    rotated = keys.get()
    assert (rotated.value, rotated.version) == (b"second-key-0123456789abcdef", "2")


def test_transient_refresh_failure_keeps_the_cached_key(aws, source, monkeypatch):
    keys, clock = source
    first = keys.get()
    clock.now += TTL

    def broken() -> None:
        raise StorageError("SSM GetParameter failed (ThrottlingException)")

    monkeypatch.setattr(keys, "_fetch", broken)
    assert keys.get() == first


def test_deleted_parameter_fails_loudly_on_refresh(aws, source):
    keys, clock = source
    keys.get()
    aws.ssm.delete_parameter(Name=PARAMETER)
    clock.now += TTL
    with pytest.raises(ConfigError, match="ParameterNotFound"):
        keys.get()


def test_key_repr_never_shows_the_key(source):
    keys, _ = source
    assert "first-key" not in repr(keys.get())
