"""The erasure's second pass, after the settle period, removes what an ingest already past its one
tombstone check stored meanwhile (its clean image and its line in a batch manifest object)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fruits_core import contracts
from fruits_privacy.lake_objects import open_lake_objects
from fruits_privacy.pseudonyms import HeldKey, pseudonyms_of
from fruits_privacy.subjects import NoTables, begin_erasure, erase_subject
from tests.privacy.subject_testkit import PSEUDONYM_KEY, SUBJECTS, pseudonym


def _in_flight_batch(tmp_path: Path, sample_image_paths) -> tuple[Path, dict[str, str]]:
    """A batch of alice's and carol's uploads as an ingest in flight stores it (in a staging lake)."""
    from fruits_ingest.local import LocalIngest

    staging = tmp_path / "staging"
    ingest = LocalIngest(tmp_path / "uploads", staging.as_uri(), PSEUDONYM_KEY)
    keys = []
    for name, path in zip(("alice", "carol"), sample_image_paths[::11], strict=False):
        labelled = dict(SUBJECTS[name], **{contracts.META_LABEL: path.parent.name})
        keys.append(ingest.upload(path.read_bytes(), labelled, f"IMG_{name}.jpg"))
    outcomes = ingest.process_batch(keys)
    assert [outcome.status for outcome in outcomes] == ["accepted", "accepted"]
    return staging, {"alice": outcomes[0].image_id, "carol": outcomes[1].image_id}


def _state(lake_dir: Path) -> tuple[set[str], str]:
    clean = {path.stem for path in (lake_dir / contracts.CLEAN_PREFIX).rglob("*.jpg")}
    manifests = "".join(path.read_text() for path in (lake_dir / contracts.MANIFESTS_PREFIX).rglob("*.json*"))
    return clean, manifests


def test_the_second_pass_removes_what_an_ingest_in_flight_stored_during_the_settle_period(
    tmp_path, sample_image_paths
):
    # GIVEN an ingest in flight (past its tombstone check) that stores alice's upload only later
    staging, ids = _in_flight_batch(tmp_path, sample_image_paths)
    lake_dir = tmp_path / "lake"
    lake_dir.mkdir()
    alice = SUBJECTS["alice"][contracts.META_USER_ID]
    pseudonyms = pseudonyms_of(alice, [HeldKey(PSEUDONYM_KEY, None)])
    waits: list[float] = []

    def settle(seconds: float) -> None:
        # the in-flight ingest's writes land while the erasure waits
        waits.append(seconds)
        shutil.copytree(staging, lake_dir, dirs_exist_ok=True)

    # WHEN alice is erased
    record = erase_subject(open_lake_objects(lake_dir.as_uri()), NoTables(), pseudonyms, "test", sleep=settle)

    # THEN the erasure waited the settle period once, and removed her image and her manifest line
    assert waits == [contracts.ERASURE_SETTLE_SECONDS]
    clean, manifests = _state(lake_dir)
    assert clean == {ids["carol"]}
    assert pseudonym(alice) not in manifests
    assert [json.loads(line)["image_id"] for line in manifests.splitlines()] == [ids["carol"]]
    assert record["counts"]["manifests"] == 1 and record["counts"]["clean_images"] == 1


def test_without_the_second_pass_the_in_flight_upload_would_stay(tmp_path, sample_image_paths):
    # The control: the first pass alone (what the erasure did before the settle) misses those writes
    staging, ids = _in_flight_batch(tmp_path, sample_image_paths)
    lake_dir = tmp_path / "lake"
    lake_dir.mkdir()
    alice = SUBJECTS["alice"][contracts.META_USER_ID]
    begin_erasure(
        open_lake_objects(lake_dir.as_uri()), NoTables(), pseudonyms_of(alice, [HeldKey(PSEUDONYM_KEY, None)])
    )
    shutil.copytree(staging, lake_dir, dirs_exist_ok=True)
    clean, manifests = _state(lake_dir)
    assert ids["alice"] in clean and pseudonym(alice) in manifests


def test_a_settle_period_out_of_range_is_a_configuration_error(tmp_path, monkeypatch, capsys):
    from fruits_cli.main import main

    monkeypatch.setenv("FRUITS_PSEUDONYM_KEY", PSEUDONYM_KEY.decode())
    for bad in ("-1", "soon", "3601"):
        argv = ["subject", "erase", "--lake", tmp_path.as_uri(), "--user-id", "x", "--settle-seconds", bad]
        assert main(argv) == 2
        assert "--settle-seconds" in capsys.readouterr().err
