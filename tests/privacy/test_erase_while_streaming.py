"""The issue's acceptance test: three subjects upload, the stream runs, one subject is erased meanwhile.

Everything is real: the local ingest, the streaming query (in-process, processing-time
trigger, cleanSource=archive) writing the Iceberg tables, and `fruits subject erase` running
while the stream keeps committing the other subjects' new uploads.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from fruits_cli.main import main
from fruits_core import contracts
from fruits_lake.reading import lake_tables
from streaming_job.query.runner import await_stream, start_stream
from tests.privacy.subject_testkit import PSEUDONYM_KEY, SUBJECTS, ingest_subjects, pseudonym
from tests.privacy.test_subject_tables import traces_on_disk
from tests.streaming.stream_testkit import stream_config

pytestmark = [pytest.mark.spark, pytest.mark.tf, pytest.mark.slow]
WAIT_SECONDS = 240


def featurized_ids(lake_dir) -> set[str]:
    try:
        features, _ = lake_tables(lake_dir.as_uri())
    except Exception:  # the stream has not created the tables yet
        return set()
    return set(features.scan(selected_fields=("image_id",)).to_arrow().column("image_id").to_pylist())


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_erasing_a_subject_while_the_stream_runs_leaves_nothing_of_them(
    spark, models, sample_image_paths, tmp_path, monkeypatch, capsys
):
    from fruits_ingest.local import LocalIngest

    monkeypatch.setenv("FRUITS_PSEUDONYM_KEY", PSEUDONYM_KEY.decode())
    lake_dir = tmp_path / "lake"
    uploads = ingest_subjects(lake_dir, tmp_path / "uploads", sample_image_paths[::11])
    config = stream_config(lake_dir, *models, "--trigger", "1", "--clean-source", "archive")
    running = start_stream(spark, config)
    stop = threading.Event()
    ended: dict = {}
    waiter = threading.Thread(
        target=lambda: ended.setdefault("reason", _await(spark, running, config, stop, ended)), daemon=True
    )
    waiter.start()
    try:
        first = {image_id for subject in uploads.values() for image_id in subject.accepted}
        wait_until(lambda: first <= featurized_ids(lake_dir), "the first uploads to be featurized")
        ingest = LocalIngest(tmp_path / "uploads", lake_dir.as_uri(), PSEUDONYM_KEY)
        late = sample_image_paths[1::11]

        # WHEN alice is erased while bob and carol keep uploading and the stream keeps committing
        def others_upload(offset: int) -> list[str]:
            ids = []
            for number, name in enumerate(("bob", "carol")):
                path = late[offset + number]
                outcome = ingest.process(
                    ingest.upload(path.read_bytes(), SUBJECTS[name], f"late_{offset}_{name}.jpg")
                )
                assert outcome.status == "accepted"
                ids.append(outcome.image_id)
            return ids

        during: list[str] = []
        uploader = threading.Thread(target=lambda: [during.extend(others_upload(i)) for i in (0, 2, 4)])
        uploader.start()
        alice_id = SUBJECTS["alice"][contracts.META_USER_ID]
        assert main(["subject", "erase", "--lake", lake_dir.as_uri(), "--user-id", alice_id]) == 0
        audit = json.loads(capsys.readouterr().out)
        uploader.join()
        # AND alice's phone retries an upload after the erasure: the ingest drops it
        retried = ingest.process(ingest.upload(late[6].read_bytes(), SUBJECTS["alice"], "late_alice.jpg"))
        assert (retried.status, retried.reason) == ("skipped", contracts.SkipReason.SUBJECT_ERASED)
        wait_until(
            lambda: set(during) <= featurized_ids(lake_dir), "the others' late uploads to be featurized"
        )
    finally:
        stop.set()
        waiter.join(timeout=120)
    assert ended.get("error") is None, ended.get("error")

    alice = pseudonym(alice_id)
    alice_images = uploads["alice"].accepted + uploads["alice"].quarantined
    # THEN nothing of alice remains: no row, no object, no file on disk (but her tombstone's name)
    assert audit["counts"]["feature_rows"] == len(uploads["alice"].accepted)
    assert traces_on_disk(lake_dir, [alice, alice[:16]]) == [contracts.tombstone_key(alice)]
    # (Spark's checkpoint lists the manifest files it processed, `dt` and image id: a random id that,
    # once her records and rows are gone, leads to nothing; it is no record of hers, see docs/gdpr.md)
    image_needles = [*alice_images, *(image_id[:16] for image_id in alice_images)]
    source_log = re.compile(rf"{contracts.CHECKPOINTS_PREFIX}features/epoch=[0-9]+/sources/")
    assert all(source_log.match(path) for path in traces_on_disk(lake_dir, image_needles))
    # AND no snapshot before the erasure is left to travel back to
    features, errors = lake_tables(lake_dir.as_uri())
    erased_at_ms = contracts.parse_iso(audit["erased_at"]).timestamp() * 1000
    for table in (features, errors):
        assert all(s.timestamp_ms >= erased_at_ms - 1000 for s in table.metadata.snapshots)
    # AND the others are untouched: every upload of bob and carol, early and late, has its row
    rows = features.scan(selected_fields=("image_id", "subject_id")).to_arrow().to_pylist()
    others = {image_id for name in ("bob", "carol") for image_id in uploads[name].accepted} | set(during)
    assert {row["image_id"] for row in rows} == others
    assert {row["subject_id"] for row in rows} == {
        pseudonym(SUBJECTS[n][contracts.META_USER_ID]) for n in ("bob", "carol")
    }
    # AND her export is empty, and the audit record is in the lake
    out = tmp_path / "alice.json"
    assert (
        main(["subject", "export", "--lake", lake_dir.as_uri(), "--user-id", alice_id, "--out", str(out)])
        == 0
    )
    document = json.loads(out.read_text())
    kinds = (
        "manifests",
        "archived_manifests",
        "quarantine_records",
        "clean_images",
        "feature_rows",
        "error_rows",
    )
    assert all(document[kind] == [] for kind in kinds)
    [record] = list((lake_dir / contracts.AUDIT_PREFIX).rglob("*.json"))
    assert json.loads(record.read_text()) == audit


def _await(spark, running, config, stop, ended) -> str | None:
    try:
        return await_stream(spark, running, config, stop)
    except Exception as error:  # reported by the test, not lost in the thread
        ended["error"] = error
        return None
