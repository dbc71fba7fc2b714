"""Lakes of real, really ingested images for the stream tests, and the model artifacts they need.

Import as `from tests.streaming.stream_testkit import ...`. The PCA is fitted once per run
(tests/conftest.py, `models`) on the default (LiteRT, ImageNet int8) 96-px featurizer of featurizer_testkit.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from fruits_core import contracts
from fruits_core.lake_uris import join_uri
from tests.streaming.featurizer_testkit import litert_featurizer

# The CLI of this environment, as a user runs it (the tests that need a process of its own).
FRUITS = str(Path(sys.executable).with_name("fruits"))
PSEUDONYM_KEY = b"stream-tests-pseudonym-key-0123456789"
# What a phone sends about its user: none of it may reach any output of the stream.
PERSONAL_METADATA = {
    contracts.META_USER_ID: "alice.martin@example.org",
    contracts.META_DEVICE_ID: "pixel7-serial-ZX81SPECTRUM",
    contracts.META_LAT: "48.856613",
    contracts.META_LON: "2.352222",
    contracts.META_CAPTURED_AT: "2024-05-01T09:41:27+02:00",
    contracts.META_APP_VERSION: "2.4.1",
}
PERSONAL_STRINGS = (
    "alice.martin",
    "ZX81SPECTRUM",
    "48.856613",
    "2.352222",
    "48.8566",
    "2.3522",
    "09:41:27",
    "07:41:27",
)
PCA_K = 4
PCA_SAMPLE = 12


def every_nth(paths: list[Path], count: int) -> list[Path]:
    """`count` images spread over all labels."""
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def upload_name(path: Path) -> str:
    """A file name as a phone would give it (it must not reach any output either)."""
    return f"IMG_{path.parent.name}_{path.stem}_holiday-{path.stem}.jpg"


def ingest_images(lake_dir: Path, uploads_dir: Path, images: list[Path], batch: int = 1) -> list:
    """Upload and ingest each image with personal metadata; return the IngestOutcomes.

    With `batch` > 1 the uploads are processed as the Lambda's SQS batches: `batch` manifests a file.
    """
    from fruits_ingest.local import LocalIngest

    ingest = LocalIngest(uploads_dir, lake_dir.as_uri(), PSEUDONYM_KEY)
    keys = []
    for path in images:
        metadata = dict(PERSONAL_METADATA, **{contracts.META_LABEL: path.parent.name})
        keys.append(ingest.upload(path.read_bytes(), metadata, upload_name(path)))
    if batch == 1:
        return [ingest.process(key) for key in keys]
    return [
        outcome
        for start in range(0, len(keys), batch)
        for outcome in ingest.process_batch(keys[start : start + batch])
    ]


def write_manifest(lake_dir: Path, name: str, text: str, dt: str = "2024-05-01") -> Path:
    """A manifest file written as the ingest writes them (hidden name first, then a rename)."""
    directory = lake_dir / contracts.MANIFESTS_PREFIX / f"dt={dt}"
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{name}.tmp"
    temporary.write_text(text)
    return temporary.rename(directory / name)


def valid_manifest(lake_dir: Path, image_id: str, dt: str = "2024-05-01", **changes) -> dict:
    manifest = {
        "schema_version": contracts.MANIFEST_SCHEMA_VERSION,
        "image_id": image_id,
        # as the ingest writes it (Path.as_uri would percent-encode the `=` of `dt=`)
        "image_uri": join_uri(lake_dir.as_uri(), contracts.clean_image_key(dt, image_id)),
        "content_sha256": "0" * 64,
        "width": 100,
        "height": 100,
        "format": "jpeg",
        "bytes": 1234,
        "label": "apple",
        "subject_id": None,
        "region": "u09t",
        "captured_hour": "2024-05-01T07:00:00.000Z",
        "uploaded_at": "2024-05-01T08:00:00.000Z",
        "ingested_at": "2024-05-01T08:00:01.000Z",
        "app_version": "2.4.1",
        "dt": dt,
    }
    manifest.update(changes)
    return manifest


def manifest_json(manifest: dict) -> str:
    return json.dumps(manifest, separators=(",", ":"))


def fit_test_models(spark, sample_images: tuple[Path, ...], directory: Path) -> tuple[str, str]:
    """(featurizer URI, PCA URI) in `directory`: the default featurizer, a k=4 PCA fitted on real images."""
    from streaming_job.featurizer.pca import fit_pca

    directory.mkdir(parents=True, exist_ok=True)
    featurizer = directory / "featurizer.tflite"
    shutil.copyfile(litert_featurizer()[0].removeprefix("file://"), featurizer)
    pca_uri = (directory / "pca").as_uri()
    fit_pca(spark, [path.resolve().as_uri() for path in sample_images], featurizer.as_uri(), pca_uri, k=PCA_K)
    return featurizer.as_uri(), pca_uri


def stream_args(lake_dir: Path, featurizer_uri: str, pca_uri: str, *extra: str) -> list[str]:
    return ["--lake", lake_dir.as_uri(), "--featurizer", featurizer_uri, "--pca", pca_uri, *extra]


def stream_config(lake_dir: Path, featurizer_uri: str, pca_uri: str, *extra: str):
    import argparse

    from streaming_job.config import add_stream_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_stream_arguments(parser)
    return config_from_args(parser.parse_args(stream_args(lake_dir, featurizer_uri, pca_uri, *extra)))
