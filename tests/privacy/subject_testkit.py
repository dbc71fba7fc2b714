"""Three data subjects' real uploads, ingested by the real local ingest, for the privacy tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from fruits_core import contracts
from fruits_lake.catalog import ensure_tables, open_catalog
from tests import table_rows

PSEUDONYM_KEY = b"privacy-tests-pseudonym-key-0123456789"
# What each phone sends: every value is personal and must vanish with an erasure.
SUBJECTS = {
    "alice": {
        contracts.META_USER_ID: "alice.martin@example.org",
        contracts.META_DEVICE_ID: "pixel7-serial-ZX81SPECTRUM",
        contracts.META_LAT: "48.856613",
        contracts.META_LON: "2.352222",
    },
    "bob": {
        contracts.META_USER_ID: "bob.dupont@example.org",
        contracts.META_DEVICE_ID: "SM-G991B-R58N90XYZQ",
        contracts.META_LAT: "45.764043",
        contracts.META_LON: "4.835659",
    },
    "carol": {
        contracts.META_USER_ID: "+33 6 12 34 56 78",
        contracts.META_DEVICE_ID: "iphone-C39XK2ABCDEF",
        contracts.META_LAT: "43.604652",
        contracts.META_LON: "1.444209",
    },
}
IMAGES_PER_SUBJECT = 2


@dataclass
class SubjectUploads:
    accepted: list[str]  # image ids
    quarantined: list[str]


def pseudonym(user_id: str) -> str:
    return hmac.new(PSEUDONYM_KEY, user_id.encode(), hashlib.sha256).hexdigest()


def ingest_subjects(lake_dir: Path, uploads_dir: Path, images: list[Path]) -> dict[str, SubjectUploads]:
    """Per subject: IMAGES_PER_SUBJECT real images accepted and one truncated image quarantined."""
    from fruits_ingest.local import LocalIngest

    ingest = LocalIngest(uploads_dir, lake_dir.as_uri(), PSEUDONYM_KEY)
    uploads = {}
    for index, (name, metadata) in enumerate(SUBJECTS.items()):
        mine = images[index * IMAGES_PER_SUBJECT : (index + 1) * IMAGES_PER_SUBJECT]
        accepted = []
        for number, path in enumerate(mine):
            labelled = dict(metadata, **{contracts.META_LABEL: path.parent.name})
            outcome = ingest.process(ingest.upload(path.read_bytes(), labelled, f"IMG_{name}_{number}.jpg"))
            assert outcome.status == "accepted", outcome
            accepted.append(outcome.image_id)
        truncated = mine[0].read_bytes()[:400]
        outcome = ingest.process(ingest.upload(truncated, metadata, f"IMG_{name}_broken.jpg"))
        assert outcome.status == "quarantined", outcome
        uploads[name] = SubjectUploads(accepted, [outcome.image_id])
    return uploads


def subjects_lake(tmp_path: Path, images: list[Path], monkeypatch) -> tuple[Path, dict[str, SubjectUploads]]:
    """tmp_path/lake with the subjects' uploads ingested; `fruits subject` is given the same pseudonym key."""
    monkeypatch.setenv("FRUITS_PSEUDONYM_KEY", PSEUDONYM_KEY.decode())
    lake_dir = tmp_path / "lake"
    return lake_dir, ingest_subjects(lake_dir, tmp_path / "uploads", images)


def export(lake_dir: Path, user_id: str, out: Path) -> dict:
    """`fruits subject export` of a local lake to `out`; the document it wrote."""
    from fruits_cli.main import main

    assert (
        main(["subject", "export", "--lake", lake_dir.as_uri(), "--user-id", user_id, "--out", str(out)]) == 0
    )
    return json.loads(out.read_text())


def erase(lake_dir: Path, user_id: str, capsys) -> dict:
    """`fruits subject erase` on a local lake; the audit record it prints."""
    from fruits_cli.main import main

    capsys.readouterr()
    assert main(["subject", "erase", "--lake", lake_dir.as_uri(), "--user-id", user_id]) == 0
    return json.loads(capsys.readouterr().out)


def archive_manifest(lake_dir: Path, image_id: str) -> Path:
    """Move a manifest as the stream's cleanSource does: under archive/manifests/ + its absolute path."""
    source = next((lake_dir / contracts.MANIFESTS_PREFIX).glob(f"dt=*/{image_id}.json"))
    target = lake_dir / contracts.MANIFESTS_ARCHIVE_PREFIX / source.resolve().relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)
    return target


def lake_files(lake_dir: Path) -> dict[str, bytes]:
    """Every file of the lake (hidden ones too), by relative path."""
    return {
        path.relative_to(lake_dir).as_posix(): path.read_bytes()
        for path in sorted(lake_dir.rglob("*"))
        if path.is_file()
    }


# What the featurizer would output for an image: the values are not under test here.
VECTOR = [0.25, -1.5, 3.0, 0.125]


def feature_rows(manifests: list[dict]) -> pa.Table:
    def moment(text):
        return contracts.parse_iso(text) if text else None

    return table_rows.feature_rows(
        [m["image_id"] for m in manifests],
        **{name: [m[name] for m in manifests] for name in ("subject_id", "key_version", "label", "region")},
        **{
            name: [moment(m[name]) for m in manifests]
            for name in ("captured_hour", "uploaded_at", "ingested_at")
        },
        processed_at=datetime.now(UTC),
        features=VECTOR,
        pca_residual=0.5,
        model_version="litert-int8-test",
        pca_version="pca-k4-test",
    )


def error_rows(image_ids: list[str]) -> pa.Table:
    return table_rows.error_rows(
        image_ids,
        reason="image_not_found",
        detail="the clean image does not exist",
        processed_at=datetime.now(UTC),
    )


def fill_tables(lake_dir: Path, uploads: dict[str, SubjectUploads]) -> None:
    """One features commit per subject (rows from their real manifests), one error row each."""
    features, errors = ensure_tables(open_catalog(lake_dir.as_uri()))
    for subject in uploads.values():
        manifests = [
            json.loads(next(lake_dir.glob(f"manifests/dt=*/{image_id}.json")).read_text())
            for image_id in subject.accepted
        ]
        features.append(feature_rows(manifests))
        errors.append(error_rows([subject.accepted[1]]))
