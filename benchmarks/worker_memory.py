"""Peak memory of one Python worker featurizing clean images with LiteRT: what sizes the executors.

Run: .venv/bin/python -m benchmarks.worker_memory [--images 200] [--input-size 224] [--cores 1]

A fresh interpreter (a child process, as a PySpark worker is) runs what a stream task runs:
the mapInPandas worker's imports, the cached LiteRT featurizer and image reader for the task's
cores, and featurize_uris over the images in inference batches of 64, twice (two micro-batches).
The images are clean images as the ingest writes them (a 12 MP photo-like picture shrunk to
2048 px and re-encoded, benchmarks.clean_image_size), not the 100-px bundled samples: decoding
is what costs memory. The peak is VmHWM from the child's own /proc/self/status; ru_maxrss is not
used, as it carries the parent's peak across fork+exec. VmPeak (address space) is printed too:
it is why spark.executor.pyspark.memory (an RLIMIT_AS cap) is left unset (docs/operations.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fruits_core.lake_uris import file_uri

DISTINCT_PICTURES = 4
STATUS_FIELDS = ("VmHWM", "VmRSS", "VmPeak")


def proc_status_mib(status_text: str) -> dict[str, float]:
    """VmHWM, VmRSS and VmPeak in MiB from the text of /proc/<pid>/status (its values are in kB)."""
    values = {}
    for line in status_text.splitlines():
        name, _, rest = line.partition(":")
        if name in STATUS_FIELDS:
            values[name] = int(rest.split()[0]) / 1024
    return values


def write_clean_images(directory: Path, count: int) -> list[str]:
    """`count` clean JPEGs (DISTINCT_PICTURES different pictures, copied): their file:// URIs."""
    from fruits_ingest.imaging import normalize_image

    from benchmarks.clean_image_size import photo_like
    from fruits_core.contracts import MAX_IMAGE_PIXELS

    pictures = [normalize_image(photo_like(seed), MAX_IMAGE_PIXELS).jpeg for seed in range(DISTINCT_PICTURES)]
    paths = []
    for index in range(count):
        path = directory / f"{index:05d}.jpg"
        path.write_bytes(pictures[index % DISTINCT_PICTURES])
        paths.append(file_uri(path.resolve()))
    return paths


def run_worker(featurizer_uri: str, image_uris: list[str], cores: int, batch_size: int) -> dict:
    """In the child: featurize the images twice as a stream task would; the status after each pass."""
    import pyspark.sql.pandas.serializers  # noqa: F401  (what a mapInPandas worker has loaded)

    from streaming_job.featurizer.featurize import featurize_uris
    from streaming_job.featurizer.model import load_featurizer_spec
    from streaming_job.featurizer.worker_cache import cached_featurizer, cached_image_reader

    class Broadcast:
        value = load_featurizer_spec(featurizer_uri)

    featurizer = cached_featurizer(Broadcast(), batch_size, cores)
    reader = cached_image_reader(cores)
    passes = []
    for _ in range(2):
        result = featurize_uris(image_uris, featurizer, None, reader)
        failed = [error for error in result.errors if error is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} images failed: {failed[0]}")
        passes.append(proc_status_mib(Path("/proc/self/status").read_text()))
    return {"model_version": featurizer.model_version, "read_threads": reader.threads, "passes": passes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--cores", type=int, default=1, help="spark.task.cpus of the task")
    parser.add_argument("--batch-size", type=int, default=64, help="--inference-batch-size")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        featurizer_uri, *image_uris = json.loads(args.child)
        print(json.dumps(run_worker(featurizer_uri, image_uris, args.cores, args.batch_size)))
        return

    from streaming_job.featurizer.model import export_featurizer

    work = Path(tempfile.mkdtemp(prefix="fruits-worker-memory-"))
    try:
        featurizer_uri = file_uri(work / "featurizer.tflite")
        export_featurizer(featurizer_uri, input_size=args.input_size)
        image_uris = write_clean_images(work, args.images)
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.worker_memory",
                "--cores",
                str(args.cores),
                "--batch-size",
                str(args.batch_size),
                "--child",
                json.dumps([featurizer_uri, *image_uris]),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = json.loads(child.stdout.splitlines()[-1])
    report.update(images=args.images, input_size=args.input_size, cores=args.cores)
    print(json.dumps(report, indent=2))
    last = report["passes"][-1]
    print(
        f"worker peak RSS (VmHWM) {last['VmHWM']:.0f} MiB after 2 x {args.images} clean images at "
        f"{args.input_size} px, {args.cores} core(s), {report['read_threads']} read threads; "
        f"address space (VmPeak) {last['VmPeak']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
