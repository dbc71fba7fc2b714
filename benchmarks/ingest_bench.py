"""Ingest benchmark: cold import time of the Lambda module and per-image handler time on real photos.

The handler is timed end to end (event parsing, HEAD, GET, decode, re-encode,
two PUTs, logs and EMF metrics) against moto's in-memory S3, one direct S3
event per image. Without moto installed it times LocalIngest on a file:// lake
instead; `backend` in the result says which.

    python -m benchmarks.ingest_bench [--n N] [--json]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.moto_ingest import (
    METADATA,
    REGION,
    LambdaContext,
    lambda_source_dir,
    moto_ingest,
    quiet_stdout,
    s3_event,
)
from streaming_job.featurizer.model import BUNDLED_IMAGES

BENCH_KEY = "benchmark-only-pseudonym-key-0123"
UPLOADS_BUCKET = "bench-uploads"
LAKE_BUCKET = "bench-lake"
COLD_IMPORT_REPEATS = 3
_IMPORT_TIMER = "import time; t = time.perf_counter(); import app; print(time.perf_counter() - t)"


def measure_ingest(image_paths: list[Path], n: int) -> dict[str, Any]:
    """Cold import time of `app` (fresh interpreter) and per-image handler time over `n` uploads."""
    if n < 1 or not image_paths:
        raise ValueError("need at least one image and n >= 1")
    chosen = [image_paths[i % len(image_paths)] for i in range(n)]
    if importlib.util.find_spec("moto") is not None:  # moto is a dev dependency
        timings, backend = _time_handler_on_moto(chosen), "moto-s3"
    else:
        timings, backend = _time_local_ingest(chosen), "file-lake"
    ordered = sorted(timings)
    return {
        "cold_import_s": round(cold_import_seconds(), 4),
        "per_image_ms_median": round(statistics.median(ordered), 2),
        "per_image_ms_p95": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 2),
        "images": n,
        "backend": backend,
    }


def cold_import_seconds(repeats: int = COLD_IMPORT_REPEATS) -> float:
    """Median time of `import app` in fresh interpreters (what a Lambda INIT spends importing)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(lambda_source_dir()),
        "LAKE_URI": "file:///tmp/fruits-bench-lake",
        "PSEUDONYM_KEY": BENCH_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }
    samples = []
    for _ in range(repeats):
        completed = subprocess.run(
            [sys.executable, "-c", _IMPORT_TIMER],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        samples.append(float(completed.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def _time_handler_on_moto(images: list[Path]) -> list[float]:
    with moto_ingest(UPLOADS_BUCKET, LAKE_BUCKET, BENCH_KEY) as ingest:
        events = []
        for index, path in enumerate(images):
            key = f"uploads/{index}-{path.name}"
            data = path.read_bytes()
            etag = ingest.s3.put_object(Bucket=UPLOADS_BUCKET, Key=key, Body=data, Metadata=METADATA)["ETag"]
            events.append(s3_event(UPLOADS_BUCKET, key, etag.strip('"'), len(data)))
        app = ingest.load_app()
        context = LambdaContext()
        timings = []
        for event in events:
            started = time.perf_counter()
            result = app.lambda_handler(event, context)
            timings.append((time.perf_counter() - started) * 1000)
            if result["accepted"] != 1:
                raise RuntimeError("benchmark upload was not accepted")
    return timings


def _time_local_ingest(images: list[Path]) -> list[float]:
    from fruits_ingest.local import LocalIngest

    with tempfile.TemporaryDirectory(prefix="fruits-ingest-bench-") as workdir, quiet_stdout():
        ingest = LocalIngest(Path(workdir) / "uploads", f"file://{workdir}/lake", BENCH_KEY.encode())
        keys = [
            ingest.upload(path.read_bytes(), METADATA, f"{i}-{path.name}") for i, path in enumerate(images)
        ]
        timings = []
        for key in keys:
            started = time.perf_counter()
            ingest.process(key)
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="number of uploads to time (default 50)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    images = sorted(BUNDLED_IMAGES.glob("*/*.jpg"))
    if not images:
        parser.error(f"no sample images under {BUNDLED_IMAGES}")
    result = measure_ingest(images, args.n)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"ingest Lambda cold import : {result['cold_import_s'] * 1000:.0f} ms "
            f"(median of {COLD_IMPORT_REPEATS})"
        )
        print(
            f"per-image handler time   : median {result['per_image_ms_median']} ms, "
            f"p95 {result['per_image_ms_p95']} ms over {result['images']} real images ({result['backend']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
