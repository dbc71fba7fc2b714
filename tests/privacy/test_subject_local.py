"""`fruits subject export|erase` on a local lake of three subjects' real, really ingested uploads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fruits_cli.main import main
from fruits_core import contracts
from fruits_privacy.erasure_audit import subject_hash
from tests.privacy.subject_testkit import (
    PSEUDONYM_KEY,
    SUBJECTS,
    archive_manifest,
    erase,
    export,
    lake_files,
    pseudonym,
    subjects_lake,
)


@pytest.fixture
def lake(tmp_path, sample_image_paths, monkeypatch):
    monkeypatch.setenv("FRUITS_OPERATOR", "dpo-on-duty")
    lake_dir, uploads = subjects_lake(tmp_path, sample_image_paths[::17], monkeypatch)
    # One of each subject's manifests has been processed and archived by the stream.
    for subject in uploads.values():
        archive_manifest(lake_dir, subject.accepted[0])
    return lake_dir, uploads


def test_export_gathers_every_record_of_one_subject_and_nothing_of_the_others(lake, tmp_path):
    lake_dir, uploads = lake
    # WHEN bob asks for his data
    document = export(lake_dir, SUBJECTS["bob"][contracts.META_USER_ID], tmp_path / "bob.json")
    bob = uploads["bob"]
    # THEN it holds his live and archived manifest, his quarantine record and his clean images
    assert [m["image_id"] for m in document["manifests"]] == [bob.accepted[1]]
    assert [m["image_id"] for m in document["archived_manifests"]] == [bob.accepted[0]]
    assert [q["image_id"] for q in document["quarantine_records"]] == bob.quarantined
    assert document["quarantine_records"][0]["reason"] == "corrupt_image"
    assert sorted(Path(key).stem for key in document["clean_images"]) == sorted(bob.accepted)
    assert document["pseudonyms"] == [
        {"subject_id": pseudonym("bob.dupont@example.org"), "key_version": None}
    ]
    # AND nothing of alice or carol
    text = json.dumps(document)
    for other in ("alice", "carol"):
        assert not any(image_id in text for image_id in uploads[other].accepted + uploads[other].quarantined)


def test_erase_removes_one_subject_everywhere_and_leaves_the_others_untouched(lake, tmp_path, capsys):
    lake_dir, uploads = lake
    alice_id = SUBJECTS["alice"][contracts.META_USER_ID]
    alice_pseudonym = pseudonym(alice_id)
    before = lake_files(lake_dir)
    alice_ids = uploads["alice"].accepted + uploads["alice"].quarantined
    alice_paths = {path for path in before if any(image_id in path for image_id in alice_ids)}
    assert len(alice_paths) == 5  # 2 clean images, 1 live + 1 archived manifest, 1 quarantine record

    # WHEN alice's data is erased
    audit = erase(lake_dir, alice_id, capsys)

    after = lake_files(lake_dir)
    # THEN no file names one of her images, and no file holds her pseudonym but her tombstone
    assert not [path for path in after if any(image_id in path for image_id in alice_ids)]
    holding = [
        path for path, data in after.items() if alice_pseudonym.encode() in data or alice_pseudonym in path
    ]
    assert holding == [contracts.tombstone_key(alice_pseudonym)]
    # AND every file of bob and carol is still there, byte for byte
    assert {path: data for path, data in before.items() if path not in alice_paths} == {
        path: data for path, data in after.items() if path in before
    }
    # AND the audit record counts what went, with the pseudonym's hash and no personal data
    assert audit["counts"] == {
        "archived_manifests": 1,
        "clean_images": 2,
        "manifests": 1,
        "quarantine_records": 1,
    }
    assert audit["subject_hash"] == subject_hash(alice_pseudonym)
    assert audit["operator"] == "dpo-on-duty"
    [audit_path] = [path for path in after if path.startswith(contracts.AUDIT_PREFIX)]
    assert json.loads(after[audit_path]) == audit
    stored = after[audit_path].decode()
    assert alice_pseudonym not in stored
    assert not [value for value in SUBJECTS["alice"].values() if value in stored]
    # AND her export is now empty, bob's is whole
    empty = export(lake_dir, alice_id, tmp_path / "alice.json")
    assert all(
        empty[kind] == []
        for kind in ("manifests", "archived_manifests", "quarantine_records", "clean_images")
    )
    bob = export(lake_dir, SUBJECTS["bob"][contracts.META_USER_ID], tmp_path / "bob.json")
    assert len(bob["clean_images"]) == 2 and len(bob["quarantine_records"]) == 1


def test_a_second_erase_finds_nothing_and_still_records_it(lake, capsys):
    lake_dir, _ = lake
    alice_id = SUBJECTS["alice"][contracts.META_USER_ID]
    first = erase(lake_dir, alice_id, capsys)
    files = lake_files(lake_dir)
    # WHEN the same request runs again
    second = erase(lake_dir, alice_id, capsys)
    # THEN it deleted nothing, wrote a second audit record and changed nothing else
    assert set(second["counts"].values()) == {0}
    assert second["request_id"] != first["request_id"]
    after = lake_files(lake_dir)
    new = set(after) - set(files)
    assert len(new) == 1 and next(iter(new)).startswith(contracts.AUDIT_PREFIX)
    assert {path: after[path] for path in files if not path.startswith(contracts.TOMBSTONES_PREFIX)} == {
        path: data for path, data in files.items() if not path.startswith(contracts.TOMBSTONES_PREFIX)
    }


def test_the_ingest_drops_a_new_upload_of_an_erased_subject(lake, tmp_path, sample_image_paths, capsys):
    from fruits_ingest.local import LocalIngest

    lake_dir, _ = lake
    erase(lake_dir, SUBJECTS["alice"][contracts.META_USER_ID], capsys)
    ingest = LocalIngest(tmp_path / "uploads", lake_dir.as_uri(), PSEUDONYM_KEY)
    image = sample_image_paths[-1].read_bytes()
    before = lake_files(lake_dir)
    # WHEN alice's phone uploads once more (a retry still in flight), and bob too
    late = ingest.process(ingest.upload(image, SUBJECTS["alice"], "IMG_late.jpg"))
    broken = ingest.process(ingest.upload(image[:400], SUBJECTS["alice"], "IMG_late_broken.jpg"))
    bob = ingest.process(ingest.upload(image, SUBJECTS["bob"], "IMG_bob_late.jpg"))
    # THEN alice's uploads leave no record at all, not even a quarantine record; bob's is accepted
    assert (late.status, late.reason) == ("skipped", contracts.SkipReason.SUBJECT_ERASED)
    assert (broken.status, broken.reason) == ("skipped", contracts.SkipReason.SUBJECT_ERASED)
    assert bob.status == "accepted"
    assert {path for path in lake_files(lake_dir) if path not in before} == {
        contracts.clean_image_key(bob.dt, bob.image_id),
        contracts.manifest_key(bob.dt, bob.image_id),
    }


def test_a_local_lake_without_its_key_is_a_configuration_error(lake, monkeypatch, capsys):
    lake_dir, _ = lake
    monkeypatch.delenv("FRUITS_PSEUDONYM_KEY")
    assert main(["subject", "erase", "--lake", lake_dir.as_uri(), "--user-id", "anyone"]) == 2
    assert "FRUITS_PSEUDONYM_KEY" in capsys.readouterr().err
