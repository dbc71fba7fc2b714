"""The one parser and join of lake URIs (fruits_core.lake_uris): every room names a file the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from fruits_ingest.storage import FileObjectStore

from fruits_core import contracts
from fruits_core.lake_uris import (
    UnsupportedUriError,
    file_uri,
    join_uri,
    local_path,
    native_location,
    s3_uri,
    split_s3,
    to_uri,
    validate_lake_uri,
)
from fruits_privacy.lake_objects import StoredVersion, open_lake_objects
from streaming_job import uris

AWKWARD_NAME = "My Lake é #1 100%"


@pytest.fixture
def awkward_lake(tmp_path: Path) -> Path:
    return tmp_path / AWKWARD_NAME


def test_a_local_path_round_trips_through_its_uri_whatever_its_characters(awkward_lake):
    # GIVEN a lake path with a space, a non-ASCII letter, `#` and `%`
    key = contracts.clean_image_key("2024-01-01", "a" * 64)
    # WHEN it becomes a URI and a key is joined THEN parsing gives back exactly that file
    assert local_path(file_uri(awkward_lake)) == awkward_lake
    assert local_path(join_uri(file_uri(awkward_lake), key)) == awkward_lake / key
    # AND Hadoop's one-slash spelling and a raw (unencoded) spelling name the same file
    assert local_path(f"file:{awkward_lake}") == awkward_lake
    assert local_path(f"file://{awkward_lake}") == awkward_lake


def test_both_spellings_of_a_local_lake_validate_to_one(tmp_path):
    raw = f"file://{tmp_path}/My Lake é/"
    encoded = file_uri(tmp_path / "My Lake é")
    assert validate_lake_uri(raw) == validate_lake_uri(encoded) == encoded
    assert " " not in encoded and "é" not in encoded


@pytest.mark.parametrize(
    "key", ["uploads/apple 0.jpg", "uploads/100% real#1?.jpg", "uploads/mangue d'été.jpg"]
)
def test_an_s3_key_round_trips_through_its_uri(key):
    assert split_s3(s3_uri("bucket", key)) == ("bucket", key)
    assert native_location(s3_uri("bucket", key)) == f"s3://bucket/{key}"


def test_keys_join_readably_and_the_native_location_is_decoded(awkward_lake):
    assert (
        join_uri("s3://bucket/lake/", "clean/dt=2024-01-01/", "x.jpg")
        == "s3://bucket/lake/clean/dt=2024-01-01/x.jpg"
    )
    assert native_location(file_uri(awkward_lake)) == f"file://{awkward_lake}"


def test_parse_errors_never_repeat_the_uri():
    # An upload's key may hold personal data, and these errors reach logs.
    for call, uri in ((split_s3, "file:///Alice Smith.jpg"), (local_path, "s3://bucket/Alice Smith.jpg")):
        with pytest.raises(UnsupportedUriError) as raised:
            call(uri)
        assert "Alice" not in str(raised.value)
    with pytest.raises(UnsupportedUriError, match="unsupported URI scheme"):
        to_uri("https://example.com/Alice.jpg")


def test_the_ingest_the_stream_and_the_privacy_commands_meet_on_one_file(awkward_lake):
    # GIVEN the ingest's store writing an object under a lake whose path needs encoding
    lake = validate_lake_uri(file_uri(awkward_lake))
    key = contracts.manifest_key("2024-01-01", "b" * 64)
    FileObjectStore().put(join_uri(lake, key), b"{}", "application/json")
    # THEN it lies under the real directory, and the stream and the privacy commands read it back
    assert (awkward_lake / key).read_bytes() == b"{}"
    assert uris.read_bytes(join_uri(lake, key)) == b"{}"
    assert uris.list_uris(join_uri(lake, contracts.MANIFESTS_PREFIX)) == [join_uri(lake, key)]
    assert open_lake_objects(lake).read(StoredVersion(key)) == b"{}"
    assert not any("%" in path.name for path in awkward_lake.parent.rglob("*") if path.name != AWKWARD_NAME)
