"""Local mode: uploads directory + file:// lake, processed in-process by the Lambda's own function."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fruits_ingest.config import ConfigError
from fruits_ingest.local import IngestOutcome, LocalIngest, UploadMissing

from fruits_core import contracts

from .helpers import PERSONAL_METADATA, TEST_PSEUDONYM_KEY


@pytest.fixture
def local(tmp_path: Path) -> LocalIngest:
    return LocalIngest(tmp_path / "uploads-bucket", f"file://{tmp_path}/lake", TEST_PSEUDONYM_KEY.encode())


def _files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_upload_writes_the_file_and_a_hidden_metadata_sidecar(local, sample_image_paths):
    # GIVEN a real photo WHEN uploaded in local mode
    data = sample_image_paths[0].read_bytes()
    key = local.upload(data, PERSONAL_METADATA, "apple 0.jpg")
    # THEN it sits under uploads/ with its metadata beside it, under a name no listing takes for an upload
    assert key == "uploads/apple 0.jpg"
    assert (local.uploads_dir / key).read_bytes() == data
    sidecar = local.uploads_dir / "uploads" / ".apple 0.jpg.metadata.json"
    assert json.loads(sidecar.read_text()) == PERSONAL_METADATA
    assert _files(local.uploads_dir) == ["uploads/.apple 0.jpg.metadata.json", "uploads/apple 0.jpg"]


def test_process_accepts_into_the_file_lake(local, sample_image_paths, tmp_path):
    # GIVEN an uploaded real photo with personal metadata
    key = local.upload(sample_image_paths[0].read_bytes(), PERSONAL_METADATA, "apple 0.jpg")

    # WHEN processed
    outcome = local.process(key)

    # THEN it is accepted: manifest v1 at the contract key, pointing at the clean image in the lake
    assert isinstance(outcome, IngestOutcome)
    assert (outcome.status, outcome.reason) == ("accepted", None)
    assert (
        outcome.manifest_uri
        == f"file://{tmp_path}/lake/{contracts.manifest_key(outcome.dt, outcome.image_id)}"
    )
    manifest = json.loads(Path(outcome.manifest_uri.removeprefix("file://")).read_text())
    assert list(manifest) == contracts.field_names(contracts.MANIFEST_FIELDS)
    assert (manifest["label"], manifest["region"]) == ("red-apple", "u09t")
    assert Path(manifest["image_uri"].removeprefix("file://")).is_file()
    assert _files(tmp_path / "lake") == [
        contracts.clean_image_key(outcome.dt, outcome.image_id),
        contracts.manifest_key(outcome.dt, outcome.image_id),
    ]


def test_process_quarantines_in_local_mode_too(local, tmp_path):
    key = local.upload(b"this is a text file", {}, "notes.jpg")
    outcome = local.process(key)
    assert (outcome.status, outcome.reason, outcome.manifest_uri) == ("quarantined", "not_an_image", None)
    record = json.loads(
        (tmp_path / "lake" / contracts.quarantine_key(outcome.dt, outcome.image_id)).read_text()
    )
    assert record["reason"] == "not_an_image"


def test_unreadable_sidecar_is_invalid_metadata(local, sample_image_paths):
    key = local.upload(sample_image_paths[0].read_bytes(), {}, "a.jpg")
    (local.uploads_dir / "uploads" / ".a.jpg.metadata.json").write_text("[1, 2]")
    assert local.process(key).reason == "invalid_metadata"


def test_processing_twice_gives_the_same_keys(local, sample_image_paths, tmp_path):
    key = local.upload(sample_image_paths[0].read_bytes(), {}, "a.jpg")
    first = local.process(key)
    files = _files(tmp_path / "lake")
    second = local.process(key)
    assert (second.image_id, second.manifest_uri) == (first.image_id, first.manifest_uri)
    assert _files(tmp_path / "lake") == files


def test_concurrent_processing_from_threads(local, sample_image_paths, tmp_path):
    # GIVEN 24 uploads of real photos
    keys = [
        local.upload(path.read_bytes(), {"label": path.parent.name}, f"{i}.jpg")
        for i, path in enumerate(sample_image_paths[:24])
    ]

    # WHEN 6 threads process them at once
    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(local.process, keys))

    # THEN every one is accepted under its own id, every manifest is complete JSON, no temp file remains
    assert {outcome.status for outcome in outcomes} == {"accepted"}
    assert len({outcome.image_id for outcome in outcomes}) == 24
    for outcome in outcomes:
        manifest = json.loads(Path(outcome.manifest_uri.removeprefix("file://")).read_text())
        assert manifest["image_id"] == outcome.image_id
    assert not [name for name in _files(tmp_path / "lake") if Path(name).name.startswith(".")]


@pytest.mark.parametrize("name", ["", "../escape.jpg", "a/b.jpg", ".hidden.jpg"])
def test_upload_refuses_path_like_names(local, name):
    with pytest.raises(ValueError, match="plain file name"):
        local.upload(b"x", {}, name)


def test_process_of_a_missing_upload_is_an_error(local):
    with pytest.raises(UploadMissing):
        local.process("uploads/never-uploaded.jpg")


def test_process_refuses_keys_outside_the_uploads_dir(local):
    with pytest.raises(ValueError, match="inside the uploads directory"):
        local.process("../../etc/passwd")


def test_local_mode_needs_a_file_lake(tmp_path):
    with pytest.raises(ConfigError, match="file:// lake"):
        LocalIngest(tmp_path, "s3://lake-bucket", TEST_PSEUDONYM_KEY.encode())
