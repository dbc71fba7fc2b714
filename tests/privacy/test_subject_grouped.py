"""`fruits subject export|erase` over batch manifest objects (JSON lines holding several people's uploads)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fruits_cli.main import main
from fruits_core import contracts
from tests.privacy.subject_testkit import PSEUDONYM_KEY, SUBJECTS, pseudonym


@pytest.fixture
def grouped_lake(tmp_path, sample_image_paths, monkeypatch):
    """Two Lambda-style batches, each mixing all three subjects; the first one archived by the stream."""
    from fruits_ingest.local import LocalIngest

    monkeypatch.setenv("FRUITS_PSEUDONYM_KEY", PSEUDONYM_KEY.decode())
    lake_dir = tmp_path / "lake"
    ingest = LocalIngest(tmp_path / "uploads", lake_dir.as_uri(), PSEUDONYM_KEY)
    images = iter(sample_image_paths[::7])
    owners: dict[str, list[str]] = {name: [] for name in SUBJECTS}
    group_files = []
    for batch in range(2):
        keys = []
        for name, metadata in SUBJECTS.items():
            path = next(images)
            labelled = dict(metadata, **{contracts.META_LABEL: path.parent.name})
            keys.append(ingest.upload(path.read_bytes(), labelled, f"IMG_{name}_{batch}.jpg"))
        outcomes = ingest.process_batch(keys)
        assert [outcome.status for outcome in outcomes] == ["accepted"] * len(SUBJECTS)
        for name, outcome in zip(SUBJECTS, outcomes, strict=True):
            owners[name].append(outcome.image_id)
        (group_file,) = {Path(outcome.manifest_uri.removeprefix("file://")) for outcome in outcomes}
        group_files.append(group_file)
    # the stream has read and archived the first batch's object (Spark's archive layout)
    archived = lake_dir / contracts.MANIFESTS_ARCHIVE_PREFIX / group_files[0].resolve().relative_to("/")
    archived.parent.mkdir(parents=True)
    shutil.move(group_files[0], archived)
    return lake_dir, owners, [archived, group_files[1]]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_erasure_removes_the_subjects_lines_from_live_and_archived_batches_and_keeps_the_others(
    grouped_lake, tmp_path, capsys
):
    lake_dir, owners, group_files = grouped_lake
    assert all(path.suffix == contracts.MANIFEST_GROUP_SUFFIX for path in group_files)
    bob = SUBJECTS["bob"][contracts.META_USER_ID]
    # GIVEN bob's export finds his line in each batch object, live and archived
    out = tmp_path / "bob.json"
    assert main(["subject", "export", "--lake", lake_dir.as_uri(), "--user-id", bob, "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert [m["image_id"] for m in document["manifests"]] == [owners["bob"][1]]
    assert [m["image_id"] for m in document["archived_manifests"]] == [owners["bob"][0]]

    # WHEN bob is erased
    capsys.readouterr()
    assert main(["subject", "erase", "--lake", lake_dir.as_uri(), "--user-id", bob]) == 0
    record = json.loads(capsys.readouterr().out)

    # THEN each batch object is still there without bob's line, with alice's and carol's intact
    assert record["counts"]["manifests"] == 1 and record["counts"]["archived_manifests"] == 1
    for batch, path in enumerate(group_files):
        assert {line["image_id"] for line in _lines(path)} == {owners["alice"][batch], owners["carol"][batch]}
        assert pseudonym(bob) not in path.read_text()
    # AND his clean images are gone, theirs are not
    clean = {path.stem for path in (lake_dir / contracts.CLEAN_PREFIX).rglob("*.jpg")}
    assert clean == {*owners["alice"], *owners["carol"]}
    # AND a second erasure finds nothing more
    capsys.readouterr()
    assert main(["subject", "erase", "--lake", lake_dir.as_uri(), "--user-id", bob]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["counts"]["manifests"] == again["counts"]["archived_manifests"] == 0
