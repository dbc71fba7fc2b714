"""The one parser and join of lake URIs (fruits_core.lake_uris): every room names a file the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from fruits_ingest.storage import FileObjectStore

from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import (
    UnsupportedUriError,
    file_uri,
    join_uri,
    local_path,
    s3_uri,
    split_s3,
    to_uri,
    validate_lake_uri,
)
from fruits_lake.catalog import ensure_tables, open_catalog
from fruits_privacy.lake_objects import StoredVersion, open_lake_objects
from streaming_job import uris

AWKWARD_NAME = "My Lake é"


@pytest.fixture
def awkward_lake(tmp_path: Path) -> Path:
    return tmp_path / AWKWARD_NAME


def test_a_local_path_round_trips_through_its_uri_whatever_its_characters(awkward_lake):
    # GIVEN a lake path with a space and a non-ASCII letter
    key = contracts.clean_image_key("2024-01-01", "a" * 32)
    # WHEN it becomes a URI and a key is joined THEN parsing gives back exactly that file
    assert local_path(file_uri(awkward_lake)) == awkward_lake
    assert local_path(join_uri(file_uri(awkward_lake), key)) == awkward_lake / key
    assert local_path(to_uri(awkward_lake)) == awkward_lake
    # AND Hadoop's one-slash spelling names the same file
    assert local_path(f"file:{awkward_lake}") == awkward_lake


def test_both_spellings_of_a_local_lake_validate_to_the_raw_one(awkward_lake):
    # GIVEN the lake as typed and as Path.as_uri (percent-encoded) writes it
    raw = f"file://{awkward_lake}/"
    # THEN both validate to one spelling, the raw one that Spark and pyiceberg take verbatim
    assert validate_lake_uri(raw) == validate_lake_uri(awkward_lake.as_uri()) == f"file://{awkward_lake}"
    # AND a local lake's path with `%` (read as an escape), `#` or `?` (where pyiceberg cuts a URL) is refused
    for refused in ("100%25", "100%", "a#1", "why?"):
        with pytest.raises(ConfigError, match="may not contain"):
            validate_lake_uri(f"file://{awkward_lake}/{refused}")


@pytest.mark.parametrize("key", ["uploads/apple 0.jpg", "uploads/100% real#1?.jpg", "uploads/a%41.jpg"])
def test_an_s3_key_round_trips_through_its_uri_verbatim(key):
    assert split_s3(s3_uri("bucket", key)) == ("bucket", key)


def test_parse_errors_never_repeat_the_uri():
    # An upload's key may hold personal data, and these errors reach logs.
    for call, uri in ((split_s3, "file:///Alice Smith.jpg"), (local_path, "s3://bucket/Alice Smith.jpg")):
        with pytest.raises(UnsupportedUriError) as raised:
            call(uri)
        assert "Alice" not in str(raised.value)
    with pytest.raises(UnsupportedUriError, match="unsupported URI scheme"):
        to_uri("https://example.com/Alice.jpg")


def test_the_ingest_the_stream_the_tables_and_the_privacy_commands_meet_on_one_file(awkward_lake):
    # GIVEN the ingest's store writing an object under a lake whose path has awkward characters
    lake = validate_lake_uri(awkward_lake.as_uri())
    key = contracts.manifest_key("2024-01-01", "b" * 32)
    FileObjectStore().put(join_uri(lake, key), b"{}", "application/json")
    # AND the table layer creating its tables there
    features, _ = ensure_tables(open_catalog(lake))
    # THEN everything lies under the one real directory, none under an encoded twin
    assert (awkward_lake / key).read_bytes() == b"{}"
    assert local_path(features.location()).is_relative_to(awkward_lake)
    assert [path.name for path in awkward_lake.parent.iterdir()] == [AWKWARD_NAME]
    # AND the stream and the privacy commands read the same object back
    assert uris.read_bytes(join_uri(lake, key)) == b"{}"
    assert uris.list_uris(join_uri(lake, contracts.MANIFESTS_PREFIX)) == [join_uri(lake, key)]
    assert open_lake_objects(lake).read(StoredVersion(key)) == b"{}"
