"""The per-image figures of `fruits cost`, measured by running the pipeline's own code.

- S3 requests of the ingest, by operation, per accepted upload: the real Lambda handler
  (`app.lambda_handler`) on SQS batches of `--batch` notifications under moto, a versioned
  uploads bucket, keys issued by the upload API and `IDENTITY_FROM_KEY` as in template.yaml,
  every botocore call counted.
- S3 requests of the stream's image reads, per image: the workers' ImageReader under moto.
- Bytes: a synthetic 12 MP photo-like upload (benchmarks.clean_image_size) and the clean image
  the ingest's normalize_image makes of it; a manifest line as the ingest writes it.
- Lambda CPU time per 12 MP photo (normalize_image, CPU seconds of this machine's core) and the
  peak RSS of a fresh interpreter holding the Lambda's modules while it processes that photo.

`operations/unit_costs.json` holds the committed figures; `fruits cost` takes its defaults
from it and tests/deploy/test_cost.py re-measures the cheap ones (drift over 5 % fails).

    python -m benchmarks.unit_costs [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

from benchmarks.moto_ingest import METADATA, REGION, LambdaContext, moto_ingest, s3_event
from operations.cost import UNIT_COSTS_PATH

REPO_ROOT = Path(__file__).resolve().parents[1]
UPLOADS_BUCKET = "unit-uploads"
LAKE_BUCKET = "unit-lake"
BENCH_KEY = "unit-costs-only-pseudonym-key-0123"
BENCH_SUBJECT = "0b5e2c1a-7d4f-4e8a-9c3b-2f6d8e1a4b7c"  # a Cognito sub's shape
DEFAULT_BATCHES = 2
CPU_REPEATS = 7
# A fresh interpreter: the Lambda's imports, then one 12 MP photo through normalize_image.
# VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's peak at fork (Linux).
_PEAK_RSS = """
import re, sys
import app  # noqa: F401  (the Lambda's module-level imports and clients)
from fruits_ingest.imaging import normalize_image
from fruits_core.contracts import MAX_IMAGE_PIXELS
data = open(sys.argv[1], "rb").read()
normalize_image(data, MAX_IMAGE_PIXELS)
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024)
"""


def template_batch_size() -> int:
    """The ingest function's SQS BatchSize in template.yaml (the batch the measurement uses)."""
    found = re.search(r"\n            BatchSize: (\d+)\n", (REPO_ROOT / "template.yaml").read_text())
    if found is None:
        raise ValueError("template.yaml has no SQS BatchSize for the ingest function")
    return int(found.group(1))


def ingest_requests(batch: int, batches: int = DEFAULT_BATCHES) -> dict[str, float]:
    """S3 calls of the Lambda per accepted upload, by operation, over `batches` full SQS batches."""
    from streaming_job.featurizer.model import BUNDLED_IMAGES

    bundled = sorted(BUNDLED_IMAGES.glob("*/*.jpg"))
    images = [bundled[index % len(bundled)] for index in range(batch * batches)]
    # As deployed: the uploader is the Cognito sub in the key the upload API issued.
    identity = {"IDENTITY_FROM_KEY": "true"}
    with moto_ingest(
        UPLOADS_BUCKET, LAKE_BUCKET, BENCH_KEY, versioned_uploads=True, extra_env=identity
    ) as ingest:
        from fruits_ingest.identity import new_upload_key

        s3 = ingest.s3
        records = []
        for path in images:
            key = new_upload_key(BENCH_SUBJECT, "image/jpeg")
            put = s3.put_object(Bucket=UPLOADS_BUCKET, Key=key, Body=path.read_bytes(), Metadata=METADATA)
            records.append(_sqs_record(key, put["ETag"].strip('"'), put["VersionId"]))
        app = ingest.load_app()
        calls: Counter[str] = Counter()
        app.S3_CLIENT.meta.events.register(
            "before-call.s3.*", lambda model, **_: calls.update([model.name]), unique_id="unit-costs"
        )
        accepted = 0
        for start in range(0, len(records), batch):
            event = {"Records": records[start : start + batch]}
            response = app.lambda_handler(event, LambdaContext("unit-costs"))
            if response["batchItemFailures"]:
                raise RuntimeError("a benchmark message failed")
            accepted += len(event["Records"])
        left = s3.list_object_versions(Bucket=UPLOADS_BUCKET).get("Versions", [])
    if left:
        raise RuntimeError(f"{len(left)} raw upload version(s) left after processing")
    return {operation: count / accepted for operation, count in sorted(calls.items())}


def stream_image_reads(images: int = 8) -> float:
    """S3 calls of the stream's workers per clean image read (ImageReader, as in featurize_uris)."""
    from moto import mock_aws

    from streaming_job.featurizer.image_io import ImageReader

    environ = {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    with mock.patch.dict(os.environ, environ), mock_aws():
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=LAKE_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        uris = []
        for index in range(images):
            s3.put_object(Bucket=LAKE_BUCKET, Key=f"clean/dt=2025-01-01/{index:032x}.jpg", Body=b"x" * 100)
            uris.append(f"s3://{LAKE_BUCKET}/clean/dt=2025-01-01/{index:032x}.jpg")
        reader = ImageReader(threads=1)
        calls: Counter[str] = Counter()
        reader._s3().meta.events.register("before-call.s3.*", lambda model, **_: calls.update([model.name]))
        reader.read_many(uris)
    return sum(calls.values()) / images


def image_bytes() -> dict[str, float]:
    """Upload and clean-image KiB of the synthetic 12 MP photos, and a manifest line's bytes."""
    from fruits_ingest.imaging import normalize_image

    from benchmarks.clean_image_size import SEEDS, photo_like
    from fruits_core.contracts import MAX_IMAGE_PIXELS

    uploads, cleans = [], []
    for seed in SEEDS:
        upload = photo_like(seed)
        uploads.append(len(upload) / 1024)
        cleans.append(len(normalize_image(upload, MAX_IMAGE_PIXELS).jpeg) / 1024)
    return {
        "image_kib": round(statistics.median(uploads), 1),
        "clean_image_kib": round(statistics.median(cleans), 1),
        "manifest_bytes": float(len(_manifest_line())),
    }


def lambda_cpu(work_dir: Path) -> dict[str, float]:
    """CPU ms of normalize_image on one 12 MP photo (median) and the peak RSS of a Lambda interpreter."""
    from fruits_ingest.imaging import normalize_image

    from benchmarks.clean_image_size import photo_like
    from fruits_core.contracts import MAX_IMAGE_PIXELS

    upload = photo_like(0)
    samples = []
    for _ in range(CPU_REPEATS):
        started = time.process_time()
        normalize_image(upload, MAX_IMAGE_PIXELS)
        samples.append((time.process_time() - started) * 1000)
    photo = work_dir / "photo-12mp.jpg"
    photo.write_bytes(upload)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "lambdas" / "ingest"), str(REPO_ROOT)]),
        "LAKE_URI": "file:///tmp/fruits-unit-costs-lake",
        "PSEUDONYM_KEY": BENCH_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }
    completed = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(photo)], env=env, capture_output=True, text=True, check=True
    )
    return {
        "lambda_cpu_ms_per_image": round(statistics.median(samples), 1),
        "lambda_peak_rss_mb": round(float(completed.stdout.strip().splitlines()[-1]), 1),
    }


def measure(work_dir: Path, batch: int) -> dict[str, Any]:
    requests = ingest_requests(batch)
    return {
        "measured_with": "python -m benchmarks.unit_costs --write",
        "ingest_batch_size": batch,
        "ingest_s3_requests_per_image": {name: round(value, 4) for name, value in requests.items()},
        "stream_s3_gets_per_image": stream_image_reads(),
        **image_bytes(),
        **lambda_cpu(work_dir),
    }


DT = "2025-06-14"


def _manifest_line() -> bytes:
    """One manifest line with every field filled, as the ingest writes it (manifest_group)."""
    from fruits_core import contracts

    record = {
        "schema_version": 1,
        "image_id": "0" * 32,
        "image_uri": f"s3://fruits-lake-123456789012-eu-west-3/{contracts.clean_image_key(DT, '0' * 32)}",
        "content_sha256": "0" * 64,
        "width": 448,
        "height": 336,
        "format": "jpeg",
        "bytes": 40_000,
        "label": "red-apple",
        "subject_id": "0" * 64,
        "region": "u09t",
        "captured_hour": "2025-06-13T16:00:00.000Z",
        "uploaded_at": "2025-06-14T09:00:00.000Z",
        "ingested_at": "2025-06-14T09:21:38.123Z",
        "app_version": "1.4.2",
        "dt": "2025-06-14",
        "key_version": "1",
    }
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")


def _sqs_record(key: str, etag: str, version_id: str) -> dict[str, Any]:
    template = json.loads((REPO_ROOT / "events" / "sqs-s3-notification.json").read_text())["Records"][0]
    notification = s3_event(UPLOADS_BUCKET, key, etag, 1)
    notification["Records"][0]["s3"]["object"]["versionId"] = version_id
    record = copy.deepcopy(template)
    record["messageId"] = str(uuid.uuid4())
    record["body"] = json.dumps(notification)
    return record


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {UNIT_COSTS_PATH.name}")
    parser.add_argument("--batch", type=int, help="SQS batch size (default: template.yaml's BatchSize)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fruits-unit-costs-") as work:
        figures = measure(Path(work), args.batch or template_batch_size())
    text = json.dumps(figures, indent=2) + "\n"
    print(text, end="")
    if args.write:
        UNIT_COSTS_PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
