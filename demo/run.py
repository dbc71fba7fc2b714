"""`fruits demo`: the whole pipeline, offline, on real images, in one process.

1. export the featurizer and fit the PCA on the clean images the stream will read (the ingest
   Lambda's re-encoding of the app's uploads, as `fruits fit-pca --lake` and the notebook fit on);
   both are reused on the next run when still valid;
2. start the stream (local Spark, 1 s trigger) on `<workdir>/lake`;
3. play the mobile app: every image is uploaded with personal metadata and GPS EXIF,
   plus two bad uploads, and the real ingest code (LocalIngest) processes each;
4. wait until every accepted image is in `<workdir>/lake/features/`, stop cleanly;
5. summarise (throughput, latency, k, explained variance, and the features' quality: a
   5-fold linear probe of the fruit label and PC1's share of the variance) and draw the plots.

Re-running resets the lake's data (uploads, manifests, clean images, features,
errors, checkpoints, status) and keeps `<workdir>/lake/models/`, so the model
export and the PCA fit are skipped when the images, weights, runtime and input size are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demo.predictions import prediction_summary, reset_classifier, train_phase, training_images
from demo.quality import first_component_share, linear_probe_accuracy
from demo.uploads import AppUpload, app_uploads, bad_uploads, find_images
from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import file_uri, join_uri
from fruits_lake.catalog import FEATURES_TABLE
from streaming_job import uris
from streaming_job.config import StreamConfig
from streaming_job.featurizer.model import BUNDLED_IMAGES, DEFAULT_RUNTIME, DEFAULT_WEIGHTS, MODEL_NAMES

DEFAULT_WORKDIR = Path("work") / "demo"
DEFAULT_INPUT_SIZE = 224
TRIGGER_SECONDS = 1.0
MAX_FILES_PER_TRIGGER = 32
INGEST_THREADS = 4
DEFAULT_TIMEOUT_SECONDS = 900.0
# Local demo only: the real key comes from SSM (AWS) or FRUITS_PSEUDONYM_KEY.
DEMO_PSEUDONYM_KEY = b"fruits-demo-pseudonym-key-not-for-production"
PSEUDONYM_KEY_ENV = "FRUITS_PSEUDONYM_KEY"
# What a re-run deletes: the lake's data areas (never models/), the uploads and the plots.
LAKE_DATA_PREFIXES = (
    contracts.UPLOADS_PREFIX,
    contracts.CLEAN_PREFIX,
    contracts.MANIFESTS_PREFIX,
    contracts.QUARANTINE_PREFIX,
    contracts.FEATURES_PREFIX,
    contracts.ERRORS_PREFIX,
    contracts.CHECKPOINTS_PREFIX,
    contracts.STATUS_PREFIX,
    contracts.ARCHIVE_PREFIX,
    contracts.CONTROL_PREFIX,
    contracts.CATALOG_PREFIX,
)
PCA_SOURCE_NAME = "pca-images.json"
# The clean images the PCA is fitted on: the Lambda's re-encoding of the uploads (kept for inspection).
PCA_IMAGES_DIR = "pca-images"
# Where the classifier's training images are uploaded (apart from the demo's own uploads).
TRAINING_UPLOADS = "uploads-train"
PROBE_FOLDS = 5


@dataclass(frozen=True)
class DemoOptions:
    images: Path
    workdir: Path
    input_size: int = DEFAULT_INPUT_SIZE
    runtime: str = DEFAULT_RUNTIME
    weights: str = DEFAULT_WEIGHTS
    master: str = "local[*]"
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    # What the classifier is trained on (demo/predictions.py); None: the bundled sample.
    train_images: Path | None = None


@dataclass(frozen=True)
class DemoPaths:
    workdir: Path
    lake: Path
    uploads: Path
    plots: Path

    @property
    def lake_uri(self) -> str:
        return file_uri(self.lake)


def default_images_dir() -> Path:
    """The bundled sample (found next to the package), else ./data/fruits360-sample."""
    return BUNDLED_IMAGES if BUNDLED_IMAGES.is_dir() else Path("data") / "fruits360-sample"


def say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def prepare_workdir(workdir: Path) -> DemoPaths:
    """Create the workdir, deleting only what an earlier demo run wrote there (models kept)."""
    workdir = workdir.resolve()
    paths = DemoPaths(
        workdir=workdir, lake=workdir / "lake", uploads=workdir / "uploads", plots=workdir / "plots"
    )
    for prefix in LAKE_DATA_PREFIXES:
        shutil.rmtree(paths.lake / prefix, ignore_errors=True)
    shutil.rmtree(paths.uploads, ignore_errors=True)
    shutil.rmtree(paths.plots, ignore_errors=True)
    for directory in (paths.lake, paths.uploads, paths.plots):
        directory.mkdir(parents=True, exist_ok=True)
    return paths


def demo_stream_config(lake_uri: str, runtime: str = DEFAULT_RUNTIME) -> StreamConfig:
    return StreamConfig(
        lake=lake_uri,
        checkpoint=join_uri(lake_uri, contracts.CHECKPOINTS_PREFIX, "features"),
        featurizer=join_uri(lake_uri, contracts.featurizer_key(runtime)),
        pca=join_uri(lake_uri, contracts.PCA_KEY),
        trigger_seconds=TRIGGER_SECONDS,
        max_files_per_trigger=MAX_FILES_PER_TRIGGER,
        stage="demo",
    )


def ensure_featurizer(
    featurizer_uri: str, input_size: int, weights: str, calibration_images: list[Path]
) -> str:
    """Export the featurizer unless one with these weights and input size is there; return its version."""
    from streaming_job.featurizer.model import FeaturizerError, export_featurizer, load_featurizer_spec

    if uris.exists(featurizer_uri):
        try:
            spec = load_featurizer_spec(featurizer_uri)
            if spec.input_size == input_size and spec.model_version.startswith(f"{MODEL_NAMES[weights]}-"):
                say(f"featurizer {spec.model_version} reused")
                return spec.model_version
        except FeaturizerError:
            say("the existing featurizer cannot be loaded: exporting a new one")
    say(f"exporting the featurizer ({MODEL_NAMES[weights]}, input {input_size}x{input_size})")
    return export_featurizer(
        featurizer_uri, input_size=input_size, weights=weights, calibration_images=calibration_images
    )


def images_fingerprint(images: list[Path], model_version: str) -> str:
    """Hash of the model version and the images' bytes: the PCA is reused only for the same pair."""
    digest = hashlib.sha256(model_version.encode())
    for path in images:
        content = hashlib.sha256(path.read_bytes()).hexdigest()
        digest.update(f"|{path.parent.name}/{path.name}:{content}".encode())
    return digest.hexdigest()


def write_clean_images(uploads: list[AppUpload], folder: Path) -> list[Path]:
    """The ingest Lambda's clean image of every upload it accepts (`normalize_image`, the code that
    writes `clean/`), as `<label>/<name>` files: the stream projects exactly these bytes."""
    from fruits_ingest.config import DEFAULT_MAX_IMAGE_PIXELS
    from fruits_ingest.imaging import ImageRejected, normalize_image

    shutil.rmtree(folder, ignore_errors=True)
    written = []
    for upload in uploads:
        try:
            clean = normalize_image(upload.data, DEFAULT_MAX_IMAGE_PIXELS)
        except ImageRejected:
            continue  # quarantined by the ingest too: never in clean/
        label = upload.metadata.get(contracts.META_LABEL, "unlabelled")
        path = folder / label / f"{Path(upload.name).stem}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(clean.jpeg)
        written.append(path)
    return sorted(written)


def ensure_pca(
    spark, config: StreamConfig, images: list[Path], model_version: str, source_file: Path
) -> None:
    """Fit the PCA on the (clean) images unless the saved one was fitted on the same images and model."""
    from streaming_job.featurizer.pca import PcaError, fit_pca, read_sidecar

    fingerprint = images_fingerprint(images, model_version)
    try:
        sidecar = read_sidecar(config.pca)
        saved = json.loads(source_file.read_text()) if source_file.exists() else {}
        if sidecar["model_version"] == model_version and saved.get("fingerprint") == fingerprint:
            say(f"PCA {sidecar['pca_version']} reused")
            return
    except PcaError:
        pass
    say(f"fitting the PCA on {len(images)} images")
    fit_pca(spark, [file_uri(path.resolve()) for path in images], config.featurizer, config.pca)
    source_file.write_text(json.dumps({"fingerprint": fingerprint, "images": len(images)}))


def demo_pseudonym_key() -> bytes:
    """FRUITS_PSEUDONYM_KEY, or the demo's own key; ConfigError naming the variable when too short."""
    from fruits_ingest.config import validate_pseudonym_key

    raw = os.environ.get(PSEUDONYM_KEY_ENV, "")
    return validate_pseudonym_key(raw.encode(), PSEUDONYM_KEY_ENV) if raw else DEMO_PSEUDONYM_KEY


def play_app(paths: DemoPaths, uploads: list[AppUpload], progress) -> list:
    """Upload everything as the app would and run the real ingest on each, a few at a time."""
    from fruits_ingest.local import LocalIngest

    ingest = LocalIngest(paths.uploads, paths.lake_uri, demo_pseudonym_key())

    def upload_and_ingest(upload: AppUpload):
        outcome = ingest.process(ingest.upload(upload.data, upload.metadata, upload.name))
        progress.update(1)
        return outcome

    with ThreadPoolExecutor(max_workers=INGEST_THREADS, thread_name_prefix="demo-app") as pool:
        return list(pool.map(upload_and_ingest, uploads))


def wait_until_done(lake_uri: str, expected: int, timeout_seconds: float, progress) -> bool:
    """Poll the tables' row counts until every accepted image is featurized (or failed) or the time is up."""
    from fruits_lake.reading import committed_rows, lake_tables

    features, errors = lake_tables(lake_uri)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        done = committed_rows(features.refresh()) + committed_rows(errors.refresh())
        progress.update(done - progress.n)
        if done >= expected:
            return True
        time.sleep(0.5)
    return False


def steady_throughput(records: list[dict]) -> tuple[float | None, int]:
    """(images/s, batches used) in steady state: the bench's definition (status_log.steady_state)."""
    from streaming_job.monitoring.status_log import steady_state

    steady = steady_state(records)
    return steady["images_per_s"], steady["batches"]


def latency_percentiles(features) -> dict[str, float | None]:
    """End-to-end latency (ingested_at -> processed_at) over every featurized image."""
    if features.empty:
        return {"p50": None, "p95": None}
    latency = features["processed_at"] - features["ingested_at"]
    milliseconds = latency.dt.total_seconds().to_numpy() * 1000.0
    return {
        "p50": round(float(np.percentile(milliseconds, 50)), 1),
        "p95": round(float(np.percentile(milliseconds, 95)), 1),
    }


def probe_accuracy(scores: np.ndarray, labels: list[str]) -> float | None:
    """The k-fold linear probe of the label on the PCA features, or None when the labels are too few."""
    try:
        return round(linear_probe_accuracy(scores, labels, folds=PROBE_FOLDS), 4)
    except ValueError:
        return None


class Laps:
    """Consecutive named durations that add up to the total (nothing left unaccounted)."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.durations: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.durations[name] = round(now - self.last, 1)
        self.last = now

    def as_dict(self) -> dict[str, float]:
        return {**self.durations, "total": round(self.last - self.started, 1)}


def render_timings(timings: dict[str, float]) -> str:
    """`featurizer 0.2 s + Spark start 4.1 s + ... = 61.0 s total`."""
    parts = " + ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items() if name != "total")
    return f"{parts} = {timings['total']:.1f} s total"


def run_demo(options: DemoOptions) -> tuple[dict, bool]:
    """Run the demo; return (summary, whether every accepted image came out)."""
    from tqdm import tqdm

    from demo.plots import explained_variance_plot, pca_scatter_plot
    from fruits_lake.reading import committed_rows, lake_tables
    from streaming_job.query.runner import await_stream, start_stream
    from streaming_job.session import build_spark_session

    images = find_images(options.images)
    if len(images) < 3:
        raise ConfigError(
            f"--images {options.images}: need at least 3 <label>/<image> files, found {len(images)}"
        )
    laps = Laps()
    paths = prepare_workdir(options.workdir)
    config = demo_stream_config(paths.lake_uri, options.runtime)
    uploads = [*app_uploads(images), *bad_uploads(images[0])]
    reset_classifier(paths.lake, paths.workdir / TRAINING_UPLOADS)

    model_version = ensure_featurizer(config.featurizer, options.input_size, options.weights, images)
    laps.lap("featurizer")
    spark = build_spark_session("fruits-demo", master=options.master)
    laps.lap("Spark start")
    clean_images = write_clean_images(uploads, paths.workdir / PCA_IMAGES_DIR)
    ensure_pca(spark, config, clean_images, model_version, paths.workdir / PCA_SOURCE_NAME)
    laps.lap("PCA")

    say("starting the stream")
    running = start_stream(spark, config)
    laps.lap("stream start")
    training = train_phase(
        paths.workdir / TRAINING_UPLOADS,
        config.lake,
        demo_pseudonym_key(),
        training_images(options.train_images or default_images_dir()),
        options.timeout_seconds,
    )
    laps.lap("classifier")
    with tqdm(
        total=len(uploads), desc="app uploads + ingest", unit="img", file=sys.stderr, disable=None
    ) as progress:
        outcomes = play_app(paths, uploads, progress)
    laps.lap("ingest")
    accepted = [outcome for outcome in outcomes if outcome.status == "accepted"]
    with tqdm(total=len(accepted), desc="featurized", unit="img", file=sys.stderr, disable=None) as progress:
        complete = wait_until_done(
            config.lake, training.rows + len(accepted), options.timeout_seconds, progress
        )
    laps.lap("stream catch-up")
    stop = threading.Event()
    stop.set()
    await_stream(spark, running, config, stop)
    laps.lap("stream stop")

    features_table, errors_table = lake_tables(config.lake)
    features = features_table.scan().to_arrow().to_pandas()
    throughput, steady_batches = steady_throughput(running.listener.records)
    scores = np.stack(features["features"].to_numpy()) if len(features) else np.zeros((0, 2))
    labels = features["label"].fillna("unlabelled").tolist()
    plots = [
        explained_variance_plot(
            running.explained_variance, running.model_version, paths.plots / "explained_variance.png"
        ),
        pca_scatter_plot(
            scores,
            labels,
            running.model_version,
            paths.plots / "pca_scatter.png",
            explained_variance=running.explained_variance,
        ),
    ]
    scored_images = {outcome.image_id: path for outcome, path in zip(outcomes, images, strict=False)}
    demo_rows = features_table.scan().to_arrow()
    predictions, prediction_plots = prediction_summary(
        training, demo_rows, scored_images, paths.plots, config, spark
    )
    plots += prediction_plots
    laps.lap("summary + plots")
    summary = {
        "images_dir": str(options.images),
        "workdir": str(paths.workdir),
        "uploads": len(uploads),
        "accepted": len(accepted),
        "quarantined": dict(
            sorted(Counter(outcome.reason for outcome in outcomes if outcome.status != "accepted").items())
        ),
        "featurized": sum(image_id in scored_images for image_id in features["image_id"]),
        "errors": committed_rows(errors_table),
        "batches": len(running.listener.records),
        "throughput_images_per_s": throughput,
        "throughput_batches": steady_batches,
        "latency_ms": latency_percentiles(features),
        "k": running.k,
        "explained_variance": round(float(sum(running.explained_variance)), 4),
        "pc1_share": round(first_component_share(running.explained_variance), 4),
        "linear_probe_accuracy": probe_accuracy(scores, labels),
        "model_version": running.model_version,
        "pca_version": running.pca_version,
        "features_table": f"{FEATURES_TABLE} at {features_table.location()}",
        "plots": [str(path) for path in plots],
        "timings_s": laps.as_dict(),
        **predictions,
    }
    return summary, complete


# Summary fields that name this machine's folders: left out of the committed record.
MACHINE_FIELDS = ("images_dir", "workdir", "features_table", "plots")


def portable_summary(summary: dict) -> dict:
    """The summary without this machine's paths: what docs/data/demo.json holds (`fruits demo --record`)."""
    return {key: value for key, value in summary.items() if key not in MACHINE_FIELDS}


def render_predictions(summary: dict) -> str:
    if summary.get("prediction_accuracy") is None:
        return f"none ({summary.get('predictions_refused') or 'no image left unseen by training'})"
    sizes = summary["model_bytes"]
    return (
        f"accuracy {summary['prediction_accuracy']:.3f} on {summary['prediction_images']} images never "
        f"trained on (held-out at training {summary['held_out_accuracy']:.3f}); app model "
        f"{sizes['app_model'] / 1e6:.1f} MB agrees {summary['app_agreement']:.1%}, "
        f"{summary['app_latency_ms_p50']} ms/image"
    )


def render_summary(summary: dict) -> str:
    quarantined = ", ".join(f"{reason} {count}" for reason, count in summary["quarantined"].items()) or "none"
    latency = summary["latency_ms"]
    accuracy = summary["linear_probe_accuracy"]
    probe = "n/a (too few labelled images)" if accuracy is None else f"{accuracy:.3f}"
    lines = [
        "Fruits! demo summary",
        f"  uploads            {summary['uploads']} ({summary['accepted']} accepted; "
        f"quarantined: {quarantined})",
        f"  featurized         {summary['featurized']} images, {summary['errors']} stream errors, "
        f"{summary['batches']} micro-batches",
        f"  throughput         {summary['throughput_images_per_s']} images/s (steady state, "
        f"{summary['throughput_batches']} batches)",
        f"  latency p50 / p95  {latency['p50']} ms / {latency['p95']} ms (ingested -> featurized)",
        f"  PCA                k={summary['k']}, explained variance {summary['explained_variance']:.1%}, "
        f"PC1 {summary['pc1_share']:.1%}",
        f"  feature quality    linear probe of the label: {probe} ({PROBE_FOLDS}-fold, k PCA features)",
        f"  model              {summary['model_version']} / {summary['pca_version']}",
        f"  predictions        {render_predictions(summary)}",
        f"  output             {summary['features_table']}",
        f"  plots              {', '.join(summary['plots'])}",
        f"  time               {render_timings(summary['timings_s'])}",
    ]
    return "\n".join(lines)
