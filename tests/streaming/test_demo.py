"""`fruits demo`: the fake app's uploads, the workdir reuse rule, and the whole demo end to end."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from demo.run import (
    DEMO_PSEUDONYM_KEY,
    Laps,
    portable_summary,
    prepare_workdir,
    render_timings,
    steady_throughput,
    write_clean_images,
)
from demo.uploads import EU_PLACES, app_uploads, bad_uploads, find_images
from fruits_core import contracts
from fruits_lake.reading import read_features
from tests.streaming.stream_testkit import FRUITS

PER_LABEL = 3


def read_gps_exif(data: bytes) -> tuple[float, float] | None:
    """(lat, lon) from an image's GPS EXIF, or None (used to prove the tags are there, and gone)."""
    with Image.open(io.BytesIO(data)) as image:
        gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    if ExifTags.GPS.GPSLatitude not in gps:
        return None

    def decimal(dms, ref) -> float:
        value = float(dms[0]) + float(dms[1]) / 60 + float(dms[2]) / 3600
        return -value if ref in ("S", "W") else value

    return (
        decimal(gps[ExifTags.GPS.GPSLatitude], gps[ExifTags.GPS.GPSLatitudeRef]),
        decimal(gps[ExifTags.GPS.GPSLongitude], gps[ExifTags.GPS.GPSLongitudeRef]),
    )


def test_app_uploads_carry_personal_metadata_and_matching_gps_exif(sample_image_paths):
    # GIVEN real images WHEN the fake app prepares its uploads
    uploads = app_uploads(sample_image_paths[:4], now=datetime(2024, 5, 1, 12, tzinfo=UTC))
    for upload, path in zip(uploads, sample_image_paths[:4], strict=True):
        metadata = upload.metadata
        # THEN each has a user, a device, a capture time, the folder's label and an EU position...
        assert metadata[contracts.META_USER_ID] and metadata[contracts.META_DEVICE_ID]
        assert metadata[contracts.META_LABEL] == path.parent.name
        assert datetime.fromisoformat(metadata[contracts.META_CAPTURED_AT]) < datetime(
            2024, 5, 1, 12, tzinfo=UTC
        )
        lat, lon = float(metadata[contracts.META_LAT]), float(metadata[contracts.META_LON])
        assert any(
            abs(lat - place_lat) <= 0.2 and abs(lon - place_lon) <= 0.2 for place_lat, place_lon in EU_PLACES
        )
        # ...and the same GPS position written as EXIF tags inside the JPEG
        exif_lat, exif_lon = read_gps_exif(upload.data)
        assert (round(exif_lat, 4), round(exif_lon, 4)) == (round(lat, 4), round(lon, 4))
    assert read_gps_exif(sample_image_paths[0].read_bytes()) is None


def test_bad_uploads_are_a_truncated_photo_and_a_text_file(sample_image_paths):
    truncated, text = bad_uploads(sample_image_paths[0])
    assert sample_image_paths[0].read_bytes().startswith(truncated.data)
    assert len(truncated.data) < sample_image_paths[0].stat().st_size
    assert not text.data.startswith(b"\xff\xd8") and text.name.endswith(".jpg")


def test_a_rerun_resets_the_lake_data_but_keeps_the_models_and_foreign_files(tmp_path):
    # GIVEN a workdir left by an earlier demo, plus a file the demo did not write
    workdir = tmp_path / "demo"
    for relative in (
        "lake/models/featurizer.tflite",
        "lake/features/features-0123/data/dt=2024-05-01/part.parquet",
        "lake/catalog/iceberg.db",
        "lake/checkpoints/features/offsets/0",
        "lake/status/latest.json",
        "uploads/uploads/a.jpg",
        "plots/pca_scatter.png",
        "notes.txt",
    ):
        (workdir / relative).parent.mkdir(parents=True, exist_ok=True)
        (workdir / relative).write_text("x")
    # WHEN the demo prepares it again
    prepare_workdir(workdir)
    # THEN only the model artifacts and the foreign file survive
    left = sorted(str(path.relative_to(workdir)) for path in workdir.rglob("*") if path.is_file())
    assert left == ["lake/models/featurizer.tflite", "notes.txt"]


def test_the_demo_reports_the_same_steady_state_as_the_bench():
    # GIVEN a slow first batch, then 200 rows in two batches ending 10 s after the first one ended
    records = [
        {
            "batch_id": 0,
            "timestamp": "2024-05-01T10:00:00.000Z",
            "batch_duration_ms": 30_000,
            "input_rows": 100,
        },
        {
            "batch_id": 1,
            "timestamp": "2024-05-01T10:00:30.000Z",
            "batch_duration_ms": 4_000,
            "input_rows": 100,
        },
        {
            "batch_id": 2,
            "timestamp": "2024-05-01T10:00:35.000Z",
            "batch_duration_ms": 5_000,
            "input_rows": 100,
        },
    ]
    # WHEN the demo computes its throughput THEN it is the bench's steady state: 200 rows / 10 s
    assert steady_throughput(records) == (20.0, 2)
    assert steady_throughput(records[:1]) == (3.33, 1)


def digests(folder: Path) -> list[str]:
    return sorted(hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.rglob("*.jpg"))


def test_the_pca_is_fitted_on_the_very_bytes_the_ingest_writes_to_clean(sample_image_paths, tmp_path):
    # GIVEN the app's uploads of 4 real images and 2 bad uploads
    from fruits_ingest.local import LocalIngest

    uploads = [*app_uploads(sample_image_paths[:4]), *bad_uploads(sample_image_paths[0])]
    # WHEN the demo writes the images its PCA is fitted on, and the real ingest processes the uploads
    fitted_on = write_clean_images(uploads, tmp_path / "pca-images")
    lake = tmp_path / "lake"
    ingest = LocalIngest(tmp_path / "uploads", lake.as_uri(), DEMO_PSEUDONYM_KEY)
    for upload in uploads:
        ingest.process(ingest.upload(upload.data, upload.metadata, upload.name))
    # THEN they are byte for byte the clean images the stream reads (the bad uploads in neither)
    assert len(fitted_on) == 4
    assert digests(tmp_path / "pca-images") == digests(lake / contracts.CLEAN_PREFIX)
    assert {path.parent.name for path in fitted_on} == {path.parent.name for path in sample_image_paths[:4]}


def test_the_timing_line_is_text_whose_parts_add_up_to_the_total():
    laps = Laps()
    laps.durations = {"featurizer": 0.3, "PCA": 12.0, "stream catch-up": 20.2}
    laps.last = laps.started + 32.5
    line = render_timings(laps.as_dict())
    assert line == "featurizer 0.3 s + PCA 12.0 s + stream catch-up 20.2 s = 32.5 s total"


def test_the_recorded_summary_names_no_folder_of_this_machine(tmp_path):
    summary = {"k": 15, "workdir": str(tmp_path), "plots": [str(tmp_path / "a.png")], "images_dir": "x"}
    summary["features_table"] = f"fruits.features at {tmp_path.as_uri()}"
    assert portable_summary(summary) == {"k": 15}


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.tf
def test_fruits_demo_end_to_end_on_twelve_images(sample_image_paths, tmp_path):
    # GIVEN a folder of 12 real images, 3 per label, in a work directory whose path has a space and
    # a non-ASCII letter (the ingest, Spark, pyiceberg and the audit must agree on every file's name)
    tmp_path = tmp_path / "Démo lake"
    images = tmp_path / "images"
    for label in sorted({path.parent.name for path in sample_image_paths}):
        (images / label).mkdir(parents=True)
        for path in [path for path in sample_image_paths if path.parent.name == label][:PER_LABEL]:
            shutil.copy(path, images / label / path.name)
    workdir = tmp_path / "work"
    # WHEN `fruits demo --json` runs on it (small input size: the test is about the plumbing)
    result = subprocess.run(
        [
            FRUITS,
            "demo",
            "--images",
            str(images),
            "--workdir",
            str(workdir),
            "--json",
            "--input-size",
            "96",
            "--master",
            "local[2]",
        ],
        capture_output=True,
        text=True,
        timeout=900,  # the demo also trains the classifier and exports the app model
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # THEN the summary accounts for every upload, the bad ones quarantined with their reason
    assert summary["uploads"] == 14 and summary["accepted"] == 12
    assert summary["quarantined"] == {"corrupt_image": 1, "not_an_image": 1}
    assert summary["featurized"] == 12 and summary["errors"] == 0
    assert summary["throughput_images_per_s"] > 0
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"]
    assert summary["k"] >= 1 and 0 < summary["explained_variance"] <= 1
    # AND the PCA was fitted on the clean images the stream projected, byte for byte (the lake's
    # clean/ also holds the classifier's training uploads)
    fitted_on = digests(workdir / "pca-images")
    assert len(fitted_on) == summary["accepted"]
    assert set(fitted_on) <= set(digests(workdir / "lake" / contracts.CLEAN_PREFIX))
    assert sum(summary["timings_s"].values()) - summary["timings_s"]["total"] == pytest.approx(
        summary["timings_s"]["total"], abs=0.5
    )
    # Spark's and Hadoop's start-up warnings are silenced locally (log4j2 "WARN <logger>:" lines)
    assert not re.search(r"\bWARN\b", result.stderr), result.stderr[-2000:]
    # AND the plots are real PNG files next to the output
    for plot in summary["plots"]:
        assert Path(plot).parent == workdir.resolve() / "plots"
        assert Path(plot).read_bytes().startswith(b"\x89PNG")
    # AND the classifier, trained first on the bundled images, scored the demo's uploads
    assert summary["training_uploads"] > 0 and 0 <= summary["prediction_accuracy"] <= 1
    assert summary["model_bytes"]["app_model"] > 0 and 0 <= summary["app_agreement"] <= 1
    assert any(Path(plot).name == "confusion_matrix.png" for plot in summary["plots"])
    # AND the output holds the 12 rows (after the training uploads') and none of the uploads' personal data
    rows = read_features((workdir / "lake").as_uri()).to_pylist()
    assert len(rows) == 12 + summary["training_uploads"]
    assert {row["label"] for row in rows} == {"apple", "lemon", "mango", "raspberry"}
    assert sum(row["classifier_version"] == summary["classifier_version"] for row in rows) >= 12
    files = sorted((workdir / "lake" / "features").rglob("*.*"))
    # (every file under the one real work directory, none under a percent-encoded twin of its name)
    assert files and [path.name for path in tmp_path.parent.iterdir()] == [tmp_path.name]
    text = json.dumps(rows, default=str) + "".join(path.read_bytes().decode("latin-1") for path in files)
    assert "demo-farmer" not in text and "android-" not in text and "IMG_" not in text
    assert all(
        read_gps_exif(path.read_bytes()) is None for path in (workdir / "lake" / "clean").rglob("*.jpg")
    )
    assert "[demo]" in result.stderr and find_images(images)
    # AND `fruits audit-pii` finds no raw identifier in the lake, none of the uploads' metadata either
    sidecars = list((workdir / "uploads").rglob(".*.metadata.json"))
    assert len(sidecars) == summary["uploads"]
    raw_values = {
        value
        for sidecar in sidecars
        for name, value in json.loads(sidecar.read_text()).items()
        # kept on purpose: the canonical fruit label and the strict-semver app version (docs/gdpr.md)
        if name not in (contracts.META_LABEL, contracts.META_APP_VERSION)
    }
    known_values = tmp_path / "known-values.txt"
    known_values.write_text("\n".join(sorted(raw_values)))
    audit = subprocess.run(
        [
            FRUITS,
            "audit-pii",
            "--lake",
            (workdir / "lake").resolve().as_uri(),
            "--known-values",
            str(known_values),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert audit.returncode == 0, audit.stdout[-4000:]
    assert " 0 findings" in audit.stdout


def test_a_short_pseudonym_key_is_a_configuration_error_naming_its_variable(monkeypatch, capsys):
    # GIVEN a FRUITS_PSEUDONYM_KEY too short to resist a dictionary attack
    from fruits_cli.main import main

    monkeypatch.setenv("FRUITS_PSEUDONYM_KEY", "short")
    # WHEN the demo starts THEN it stops at once with exit 2 and a message naming that variable
    assert main(["demo", "--workdir", "unused-workdir"]) == 2
    error = capsys.readouterr().err
    assert "configuration error" in error
    assert "FRUITS_PSEUDONYM_KEY" in error
    assert "Traceback" not in error


def test_the_scatter_axes_say_each_components_share_of_the_variance():
    from demo.plots import axis_label

    assert axis_label(1, [0.4254, 0.21]) == "PC 1 (42.5 % of the variance)"
    assert axis_label(2, [0.4254, 0.21]) == "PC 2 (21.0 % of the variance)"
    assert axis_label(2, None) == "PC 2" and axis_label(3, [0.5, 0.2]) == "PC 3"
