"""The benchmark's lake: a featurizer and a fitted PCA per runtime, and N manifests of real images.

Built once per (images, N, input size, k, runtimes) in the bench workdir and reused (also by a run
that asks for fewer of its runtimes):

    <workdir>/seed/            the real ingest (LocalIngest) run once on each distinct sample image
    <workdir>/lake/models/     per runtime: featurizer.tflite / featurizer.keras (the bundled ImageNet
                               weights, at the input size), pca-<runtime>/ (Spark ML, fixed k) and
                               classifier/<version>/: `fruits classifier train` on the seed images
                               streamed once with that runtime (its latest.json is written by the
                               scoring stream mode, since each runtime has its own PCA version)
    <workdir>/lake/clean/      N clean images: the ingested ones, repeated (copied) up to N
    <workdir>/lake/manifests/  N manifest v1 documents, one per clean image, each its own image_id
    <workdir>/workload.json    what was built, to decide whether a later run can reuse it

Each mode (benchmarks/modes.py) reads the same N images: `alone` from the
manifests' image URIs, the stream and the backfill through the manifests.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from fruits_core import contracts
from fruits_core.lake_uris import file_uri, join_uri
from streaming_job import uris
from streaming_job.config import StreamConfig

WORKLOAD_FILE = "workload.json"
WORKLOAD_VERSION = 3
PCA_SAMPLE_SIZE = 64
BENCH_UPLOADS_BUCKET = "fruits-bench-uploads"
# Local benchmark only: the real key comes from SSM (AWS) or FRUITS_PSEUDONYM_KEY.
BENCH_PSEUDONYM_KEY = b"fruits-bench-pseudonym-key-not-for-production"
BENCH_METADATA = {contracts.META_USER_ID: "bench-farmer@example.org", contracts.META_APP_VERSION: "2.4.1"}
# Output areas a stream run writes: cleared before each run so every run starts from scratch.
RUN_OUTPUT_PREFIXES = (
    contracts.FEATURES_PREFIX,
    contracts.ERRORS_PREFIX,
    contracts.CHECKPOINTS_PREFIX,
    contracts.CATALOG_PREFIX,
    contracts.STATUS_PREFIX,
    "control/",
)


@dataclass(frozen=True)
class WorkloadSpec:
    images_dir: str
    n: int
    input_size: int
    k: int
    runtimes: tuple[str, ...]


@dataclass(frozen=True)
class Workload:
    """A built benchmark lake (what workload.json holds)."""

    spec: WorkloadSpec
    workdir: str
    model_versions: dict[str, str]
    pca_versions: dict[str, str]
    distinct_images: int
    images_fingerprint: str
    classifier_pointers: dict[str, dict] = field(default_factory=dict)  # runtime -> latest.json
    version: int = WORKLOAD_VERSION

    @property
    def lake(self) -> Path:
        return Path(self.workdir) / "lake"

    @property
    def lake_uri(self) -> str:
        return file_uri(self.lake)

    def featurizer_uri(self, runtime: str) -> str:
        return join_uri(self.lake_uri, contracts.featurizer_key(runtime))

    def pca_uri(self, runtime: str) -> str:
        return join_uri(self.lake_uri, f"{contracts.PCA_KEY}-{runtime}")

    def stream_config(self, runtime: str, **options) -> StreamConfig:
        """The stream over this lake with one runtime's featurizer and PCA (`options`: the run's flags)."""
        return StreamConfig(
            lake=self.lake_uri,
            checkpoint=join_uri(self.lake_uri, contracts.CHECKPOINTS_PREFIX, "features"),
            featurizer=self.featurizer_uri(runtime),
            pca=self.pca_uri(runtime),
            stage="bench",
            **options,
        )

    def image_uris(self) -> list[str]:
        """The N clean images' URIs, in manifest-name order (the images every mode processes)."""
        manifests = sorted((self.lake / contracts.MANIFESTS_PREFIX).glob("dt=*/*.json"))
        return [json.loads(path.read_text())["image_uri"] for path in manifests]

    def clear_run_outputs(self) -> None:
        clear_outputs(self.lake)

    def publish_classifier(self, runtime: str) -> str:
        """Point the lake's latest.json at this runtime's classifier (as `fruits classifier train` does)."""
        from streaming_job.scoring.classifier import latest_uri

        pointer = self.classifier_pointers[runtime]
        uris.write_bytes(latest_uri(self.lake_uri), json.dumps(pointer, indent=2).encode())
        return pointer["version"]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Workload:
        data = json.loads(text)
        spec = data["spec"]
        return cls(**{**data, "spec": WorkloadSpec(**{**spec, "runtimes": tuple(spec["runtimes"])})})


def sample_images(images_dir: Path) -> list[Path]:
    """The real `<label>/<n>.jpg` images of a folder, sorted."""
    from demo.uploads import find_images

    return find_images(images_dir)


def fingerprint(images: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in images:
        digest.update(f"{path.parent.name}/{path.name}:{path.stat().st_size}|".encode())
    return digest.hexdigest()[:16]


def load_workload(workdir: Path) -> Workload | None:
    try:
        return Workload.from_json((workdir / WORKLOAD_FILE).read_text())
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return None


def reusable(workload: Workload | None, spec: WorkloadSpec, images: list[Path]) -> bool:
    """Built from the same images, N, input size and k, with artifacts for every runtime asked for.

    A lake built for more runtimes serves fewer: each runtime's featurizer, PCA and
    classifier are independent, and the manifests and clean images do not depend on them.
    """
    return (
        workload is not None
        and workload.version == WORKLOAD_VERSION
        and replace(workload.spec, runtimes=spec.runtimes) == spec
        and set(spec.runtimes) <= set(workload.spec.runtimes)
        and workload.images_fingerprint == fingerprint(images)
    )


def build_workload(workdir: Path, spec: WorkloadSpec, spark) -> Workload:
    """Export each runtime's featurizer, ingest the images, replicate their manifests to N, fit the PCAs."""
    from streaming_job.featurizer.model import export_featurizer
    from streaming_job.featurizer.pca import fit_pca

    images = sample_images(Path(spec.images_dir))
    if len(images) < 2:
        raise ValueError(f"--images {spec.images_dir}: need >= 2 <label>/<image> files, found {len(images)}")
    workdir = workdir.resolve()
    for stale in ("seed", "lake", WORKLOAD_FILE):
        target = workdir / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    lake = workdir / "lake"
    lake.mkdir(parents=True)
    partial = Workload(
        spec=spec,
        workdir=str(workdir),
        model_versions={},
        pca_versions={},
        distinct_images=len(images),
        images_fingerprint=fingerprint(images),
    )
    seed_manifests = ingest_sample(images, workdir / "seed")
    replicate_manifests(seed_manifests, lake, spec.n)
    pca_sample = [json.loads(path.read_text())["image_uri"] for path in seed_manifests][:PCA_SAMPLE_SIZE]
    model_versions, pca_versions, classifier_pointers = {}, {}, {}
    for runtime in spec.runtimes:
        featurizer_uri = partial.featurizer_uri(runtime)
        model_versions[runtime] = export_featurizer(featurizer_uri, input_size=spec.input_size)
        sidecar = fit_pca(spark, pca_sample, featurizer_uri, partial.pca_uri(runtime), k=spec.k)
        pca_versions[runtime] = sidecar["pca_version"]
        classifier_pointers[runtime] = train_classifier_for(spark, partial, runtime)
    workload = Workload(
        spec=spec,
        workdir=str(workdir),
        model_versions=model_versions,
        pca_versions=pca_versions,
        distinct_images=len(images),
        images_fingerprint=partial.images_fingerprint,
        classifier_pointers=classifier_pointers,
    )
    (workdir / WORKLOAD_FILE).write_text(workload.to_json())
    return workload


def clear_outputs(lake: Path) -> None:
    for prefix in RUN_OUTPUT_PREFIXES:
        shutil.rmtree(lake / prefix, ignore_errors=True)


def train_classifier_for(spark, workload: Workload, runtime: str) -> dict:
    """The scoring stream's classifier for one runtime: its pointer (latest.json), its files in the lake.

    The distinct seed images (labelled at upload) are streamed once with this
    runtime's featurizer and PCA (copied beside them), then `fruits classifier
    train` runs on that table: the classifier a deployment would publish for
    this PCA version.
    """
    import threading

    from fruits_classifier.training import train_classifier
    from streaming_job.query.runner import await_stream, start_stream
    from streaming_job.scoring.classifier import CLASSIFIER_DIR, read_pointer

    seed = replace(workload, workdir=str(Path(workload.workdir) / "seed"))
    clear_outputs(seed.lake)
    shutil.copytree(
        workload.lake / contracts.MODELS_PREFIX, seed.lake / contracts.MODELS_PREFIX, dirs_exist_ok=True
    )
    config = seed.stream_config(runtime, available_now=True, predictions=False)
    await_stream(spark, start_stream(spark, config), config, threading.Event())
    version = train_classifier(seed.lake_uri).classifier.version
    shutil.copytree(seed.lake / CLASSIFIER_DIR / version, workload.lake / CLASSIFIER_DIR / version)
    return read_pointer(seed.lake_uri)


def ingest_sample(images: list[Path], seed_dir: Path) -> list[Path]:
    """Run the real ingest (LocalIngest) once per image; return the accepted manifests' paths."""
    from fruits_ingest.local import LocalIngest

    seed_lake = seed_dir / "lake"
    ingest = LocalIngest(seed_dir / "uploads", file_uri(seed_lake), BENCH_PSEUDONYM_KEY)
    manifests = []
    for index, path in enumerate(images):
        metadata = {**BENCH_METADATA, contracts.META_LABEL: path.parent.name}
        outcome = ingest.process(ingest.upload(path.read_bytes(), metadata, f"bench-{index:06d}.jpg"))
        if outcome.status == "accepted":
            manifests.append(uris.local_path(outcome.manifest_uri))
    if not manifests:
        raise ValueError("the ingest accepted none of the benchmark images")
    return manifests


def replicate_manifests(seed_manifests: list[Path], lake: Path, n: int) -> None:
    """N manifests (and clean images) in `lake`: copy j of seed image i gets its own image_id.

    Each replica is what the ingest would have written for the same photo uploaded
    again under another name; manifests are written under a hidden name and renamed,
    as the local ingest does (the file source never sees a half-written manifest).
    """
    seeds = [json.loads(path.read_text()) for path in seed_manifests]
    for index in range(n):
        seed = seeds[index % len(seeds)]
        source = uris.local_path(seed["image_uri"])
        upload_key = f"{contracts.UPLOADS_PREFIX}bench-{index:06d}.jpg"
        image_id = contracts.image_id(BENCH_UPLOADS_BUCKET, upload_key, seed["content_sha256"])
        clean = lake / contracts.clean_image_key(seed["dt"], image_id)
        clean.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, clean)
        manifest = {**seed, "image_id": image_id, "image_uri": file_uri(clean)}
        target = lake / contracts.manifest_key(seed["dt"], image_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        hidden = target.with_name(f".{target.name}.tmp")
        hidden.write_text(json.dumps(manifest))
        os.replace(hidden, target)
