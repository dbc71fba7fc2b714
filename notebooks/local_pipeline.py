# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Fruits! pipeline, locally, in PySpark: ingest, decode, featurize, PCA, Iceberg
#
# > **En bref (français).** Ce notebook rejoue toute la chaîne sur les vraies images fournies avec le
# > dépôt (`data/fruits360-sample`, 4 fruits), dans une session Spark locale : l'ingestion (le code de la
# > Lambda) de photos portant des métadonnées personnelles, et ce que l'anonymisation garde ou supprime ;
# > la lecture des manifestes avec `spark.read` ; le décodage des images ; l'extraction de
# > caractéristiques MobileNetV2 dont le modèle est diffusé (`sparkContext.broadcast`) aux workers dans un
# > `mapInPandas` ; l'ACP avec `pyspark.ml.feature.PCA`, comparée à celle du projet (courbe de variance
# > expliquée, choix de k) ; le flux Spark Structured Streaming qui projette et écrit dans une table
# > **Iceberg** (`fruits.features`, partitionnée par jour) ; enfin la relecture de la table, un nuage de
# > points en 2-D par fruit (la part de variance de chaque axe) et la précision d'une sonde linéaire.
#
# The PySpark chain is written out in the cells below (`spark.read`, `broadcast`, `mapInPandas`,
# `pyspark.ml`, `df.show()`); where a step *is* the product (the Lambda's ingest, the featurizer's
# runtime, the PCA fit the stream uses, the stream itself) the cell calls the project's function, so what
# you see is what the Lambda and the EMR job do. Re-run it with `make notebook`;
# `FRUITS_NOTEBOOK_IMAGES_PER_CLASS` (default: every bundled image) makes it smaller, as its test does.

# %%
import contextlib
import json
import os
import pickle
import shutil
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Image, display


def find_repo_root(start: Path) -> Path:
    """The folder holding pyproject.toml (the notebook may run from notebooks/ or the repository root)."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").exists():
            return folder
    raise FileNotFoundError("run the notebook inside the repository")


@contextlib.contextmanager
def quiet_native_stderr():
    """Send what native code writes to stderr (the JVM's start-up notes, LiteRT's delegate banner) to
    /dev/null while the block runs: the kernel would show it as output. The JVM started inside keeps that
    stderr for good; Spark's errors still reach Python as exceptions."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


REPO = find_repo_root(Path.cwd().resolve())
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up banners, here and in the workers
IMAGES_PER_CLASS = int(os.environ.get("FRUITS_NOTEBOOK_IMAGES_PER_CLASS", "0")) or None
WORKDIR = Path(os.environ.get("FRUITS_NOTEBOOK_WORKDIR", REPO / "work" / "notebook")).resolve()
shutil.rmtree(WORKDIR, ignore_errors=True)
LAKE = WORKDIR / "lake"
LAKE.mkdir(parents=True)
PLOTS = WORKDIR / "plots"


def shown(text: str) -> str:
    """Text as printed here: the lake's location on this machine replaced by `<lake>`."""
    return str(text).replace(LAKE.as_uri(), "<lake>").replace(str(LAKE), "<lake>")


started = time.monotonic()
where = (
    f"<repository>/{WORKDIR.relative_to(REPO)}"
    if WORKDIR.is_relative_to(REPO)
    else "$FRUITS_NOTEBOOK_WORKDIR"
)
print(f"workdir {where}; images per class: {IMAGES_PER_CLASS or 'all'}")

# %% [markdown]
# ## 1. The images and a local SparkSession
#
# The sample holds real Fruits-360 photos, one folder per fruit (the folder name is the label).
# The SparkSession comes from `streaming_job.session.build_spark_session`, the one place the CLI,
# `spark-submit` on EMR and the tests build it: Python workers are reused (so a worker keeps its model
# between tasks), Arrow is on, time zone UTC, and locally Spark's start-up warnings are kept at ERROR
# (`streaming_job/log4j2-local.properties`). Here it runs in `local[*]` mode on this machine's cores.

# %%
from demo.uploads import find_images
from streaming_job.featurizer.model import BUNDLED_IMAGES
from streaming_job.session import build_spark_session

all_images = find_images(BUNDLED_IMAGES)
by_label: dict[str, list[Path]] = {}
for path in all_images:
    by_label.setdefault(path.parent.name, []).append(path)
images = [path for label in sorted(by_label) for path in by_label[label][:IMAGES_PER_CLASS]]
print(pd.Series([path.parent.name for path in images]).value_counts().sort_index().to_string())

with quiet_native_stderr():
    spark = build_spark_session("fruits-notebook", master="local[*]")
print(f"Spark {spark.version}, master {spark.sparkContext.master}")

# %% [markdown]
# ## 2. Ingest: what the anonymization keeps and drops
#
# The demo's stand-in for the mobile app (`demo.uploads.app_uploads`) uploads each photo with what a
# phone really sends: a user id, a device id, GPS coordinates, a capture time (as S3 user metadata
# *and* as EXIF tags inside the JPEG). `fruits_ingest.local.LocalIngest` runs the ingest Lambda's own
# processing function on each upload: validate, anonymize, re-encode the pixels, write the clean image
# and its manifest, or quarantine the upload with a reason. Two bad uploads (a truncated photo, a text
# file named like a photo) show the quarantine.

# %%
from fruits_ingest.local import LocalIngest

from demo.run import DEMO_PSEUDONYM_KEY
from demo.uploads import app_uploads, bad_uploads
from fruits_core import contracts

ingest = LocalIngest(WORKDIR / "uploads", LAKE.as_uri(), DEMO_PSEUDONYM_KEY)
uploads = app_uploads(images)
bad = bad_uploads(images[0])
outcomes = [ingest.process(ingest.upload(up.data, up.metadata, up.name)) for up in [*uploads, *bad]]
accepted = [outcome for outcome in outcomes if outcome.status == "accepted"]
pd.DataFrame(
    [(outcome.status, outcome.reason or "") for outcome in outcomes], columns=["status", "reason"]
).value_counts().to_frame("uploads")

# %% [markdown]
# One upload, field by field: what the app sent and what the manifest (the only record the stream
# reads) holds. A value that is *absent* from the manifest was dropped; the others were pseudonymised
# (user id -> keyed HMAC), coarsened (GPS -> a ~20 km geohash, capture time -> the UTC hour) or kept.

# %%
first_upload, first_outcome = uploads[0], outcomes[0]
manifest = json.loads(Path(first_outcome.manifest_uri.removeprefix("file://")).read_text())
manifest_text = json.dumps(manifest)
# Where each upload field may reappear (docs/design.md, "Anonymization"); None: nowhere.
DESTINATION = {
    contracts.META_USER_ID: "subject_id",
    contracts.META_DEVICE_ID: None,
    contracts.META_CAPTURED_AT: "captured_hour",
    contracts.META_LAT: "region",
    contracts.META_LON: "region",
    contracts.META_LABEL: "label",
    contracts.META_APP_VERSION: "app_version",
}
rows = []
for name, value in [*first_upload.metadata.items(), ("file name", first_upload.name)]:
    field = DESTINATION.get(name)
    kept = manifest.get(field) if field else None
    fate = "dropped" if kept is None else ("kept as sent" if value in manifest_text else "transformed")
    rows.append(
        {
            "upload field": name,
            "sent by the app": value,
            "manifest field": field or "-",
            "in the manifest": kept if kept is not None else "-",
            "fate": fate,
        }
    )
pd.DataFrame(rows)

# %% [markdown]
# The full manifest, and the EXIF tags of the uploaded JPEG against those of the clean JPEG the
# Lambda re-encoded from the decoded pixels (GPS, camera, capture time: all gone).

# %%
from PIL import Image as PilImage

clean_path = Path(manifest["image_uri"].removeprefix("file://"))
upload_path = WORKDIR / "uploads" / contracts.UPLOADS_PREFIX / first_upload.name
with PilImage.open(upload_path) as uploaded, PilImage.open(clean_path) as clean:
    exif_counts = {"upload EXIF tags": len(uploaded.getexif()), "clean image EXIF tags": len(clean.getexif())}
print(shown(json.dumps(manifest, indent=1)))
print(exif_counts)

# %% [markdown]
# ## 3. Reading the manifests with `spark.read`
#
# The stream reads `<lake>/manifests/` with `spark.readStream`; the same source options and the same
# parser (`MANIFEST_SOURCE_OPTIONS`, `parse_manifests`: the explicit manifest schema, never inferred)
# work in batch with `spark.read`. One row per accepted upload:

# %%
from pyspark.sql import functions as F

from fruits_core.lake_uris import join_uri
from streaming_job.query.stream import MANIFEST_SOURCE_OPTIONS, parse_manifests

manifests = parse_manifests(
    spark.read.format("text")
    .options(**MANIFEST_SOURCE_OPTIONS)
    .load(join_uri(LAKE.as_uri(), contracts.MANIFESTS_PREFIX))
)
print(f"{manifests.count()} manifests")
manifests.select("image_id", "label", "subject_id", "region", "captured_hour", "width", "height").show(
    5, truncate=20
)

# %% [markdown]
# ## 4. Reading and decoding the clean images
#
# Spark's `binaryFile` source reads the clean JPEGs (one row per file, its bytes in `content`); a join
# on the URI attaches each to its manifest.
# `streaming_job.featurizer.preprocess.decode_and_resize`, what every
# worker runs, decodes a JPEG to the featurizer's RGB input (here 224 x 224, pixels as they are fed
# to MobileNetV2). A few of them, decoded from the DataFrame's rows:

# %%
from streaming_job.featurizer.preprocess import decode_and_resize

files = (
    spark.read.format("binaryFile")
    .option("recursiveFileLookup", "true")
    .load(join_uri(LAKE.as_uri(), contracts.CLEAN_PREFIX))
    # Spark names local files file:/path; manifests say file:///path
    .select(F.regexp_replace("path", "^file:/+", "file:///").alias("image_uri"), "content")
)
image_rows = manifests.select("image_id", "label", "image_uri").join(files, "image_uri")
print(f"{image_rows.count()} images joined to their manifests")

INPUT_SIZE = 224
examples = image_rows.groupBy("label").agg(F.slice(F.collect_list("content"), 1, 3).alias("jpegs"))
examples = [(row["label"], jpeg) for row in examples.orderBy("label").collect() for jpeg in row["jpegs"]]
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

columns = 6
figure, axes = plt.subplots(
    -(-len(examples) // columns), columns, figsize=(12, 2.4 * -(-len(examples) // columns))
)
for axis in np.ravel(axes):
    axis.axis("off")
for axis, (label, jpeg) in zip(np.ravel(axes), examples, strict=False):
    axis.imshow(decode_and_resize(jpeg, INPUT_SIZE))
    axis.set_title(label, fontsize=10)
figure.suptitle(f"decoded model inputs ({INPUT_SIZE} x {INPUT_SIZE} RGB), read from the DataFrame")
figure.tight_layout()
PLOTS.mkdir(parents=True, exist_ok=True)
figure.savefig(PLOTS / "inputs.png", dpi=80)
plt.close(figure)
display(Image(filename=str(PLOTS / "inputs.png")))

# %% [markdown]
# ## 5. The featurizer, broadcast to the workers, in `mapInPandas`
#
# The featurizer is an ImageNet-trained MobileNetV2 shipped with the repository (`models/`, int8,
# Apache 2.0): nothing is downloaded.
# `streaming_job.featurizer.model.export_featurizer` cuts it after its global
# pool (1280 features per image) and writes it into the lake (`models/featurizer.tflite`); LiteRT's
# interpreter runs it. On the driver, `load_featurizer_spec` reads it once into a small picklable
# **spec**, and `spark.sparkContext.broadcast` ships it: each executor receives it once per job instead
# of once per task. Inside `mapInPandas`, `cached_featurizer` builds each Python worker's interpreter
# **once** from the broadcast value (no file I/O, no download on the worker) and keeps it for every later
# task (`spark.python.worker.reuse`). The PCA fit and the stream below work the same way.

# %%
from streaming_job.featurizer.model import export_featurizer, load_featurizer_spec

featurizer_uri = join_uri(LAKE.as_uri(), contracts.FEATURIZER_KEY)
clock = time.monotonic()
with quiet_native_stderr():
    model_version = export_featurizer(featurizer_uri, input_size=INPUT_SIZE)
spec = load_featurizer_spec(featurizer_uri)
print(
    f"exported {contracts.FEATURIZER_KEY} ({model_version}) in {time.monotonic() - clock:.1f} s; "
    f"the broadcast {type(spec).__name__} weighs {len(pickle.dumps(spec)) / 1e6:.1f} MB pickled"
)


def describe(value) -> str:
    """A spec field as shown below: small values as they are, bulky ones by type and pickled size."""
    if isinstance(value, str | int | float) and len(str(value)) <= 60:
        return str(value)
    return f"{type(value).__name__}, {len(pickle.dumps(value)) / 1e6:.2f} MB"


pd.DataFrame(
    [(item.name, describe(getattr(spec, item.name))) for item in fields(spec)],
    columns=["broadcast field", "value"],
)

# %%
spec_broadcast = spark.sparkContext.broadcast(spec)


def featurize(batches):
    """mapInPandas: decode each JPEG and run the broadcast featurizer, one forward pass per batch."""
    from streaming_job.featurizer.preprocess import decode_and_resize
    from streaming_job.featurizer.worker_cache import cached_featurizer

    featurizer = cached_featurizer(spec_broadcast)  # built once per worker process, then reused
    for batch in batches:
        pixels = np.stack([decode_and_resize(jpeg, featurizer.input_size) for jpeg in batch["content"]])
        vectors = featurizer.features(pixels).astype(np.float32)
        yield pd.DataFrame(
            {"image_id": batch["image_id"], "label": batch["label"], "features": list(vectors)}
        )


clock = time.monotonic()
features_df = image_rows.mapInPandas(
    featurize, "image_id string, label string, features array<float>"
).cache()
print(f"{features_df.count()} images featurized in {time.monotonic() - clock:.1f} s")
features_df.select(
    "image_id", "label", F.size("features").alias("dimensions"), F.slice("features", 1, 3).alias("first 3")
).show(5, truncate=40)

# %% [markdown]
# ## 6. PCA: the project's fit, and `pyspark.ml.feature.PCA`
#
# `streaming_job.featurizer.pca.fit_pca` is the fit the stream uses: it featurizes the clean images with the
# broadcast spec (the same path as above), centres the vectors with Spark ML's `StandardScaler`,
# computes their covariance with Spark (`RowMatrix.computeCovariance`) and decomposes it, then keeps the
# fewest components that explain 95 % of the variance: that number is **k**. It saves a Spark ML
# `PipelineModel` and a sidecar (`pca.json`) in the lake. The bars are each component's share of the
# variance, the line the running total up to k.

# %%
from demo.plots import explained_variance_plot
from streaming_job.featurizer.pca import fit_pca

pca_uri = join_uri(LAKE.as_uri(), contracts.PCA_KEY)
clean_uris = [row["image_uri"] for row in manifests.select("image_uri").collect()]
clock = time.monotonic()
sidecar = fit_pca(spark, clean_uris, featurizer_uri, pca_uri)
print(
    f"PCA fitted in {time.monotonic() - clock:.1f} s on {sidecar['sample_size']} images: "
    f"k = {sidecar['k']} components explain {sidecar['cumulative_explained_variance'][-1]:.1%} "
    f"of the variance (target {sidecar['target_variance']:.0%}) of {sidecar['feature_dim']} features"
)
variance_png = explained_variance_plot(sidecar["explained_variance"], model_version, PLOTS / "variance.png")
display(Image(filename=str(variance_png)))

# %% [markdown]
# The same k with Spark ML's own estimator on the features of step 5: `StandardScaler` centres them
# (Spark's `PCA` does not subtract the mean), `PCA(k)` fits. Spark's `PCA` takes an SVD of the
# 1280 x 1280 covariance, which with fewer images than features is rank-deficient; docs/stream.md
# ("A Spark 4.0.1 pitfall") explains why the project decomposes the covariance with NumPy instead.
# The table compares the two fits' explained variance, component by component.

# %%
from pyspark.ml.feature import PCA, StandardScaler
from pyspark.ml.functions import array_to_vector, vector_to_array

vectors = features_df.select("image_id", "label", array_to_vector("features").alias("vector"))
centred = (
    StandardScaler(withMean=True, withStd=False, inputCol="vector", outputCol="centred")
    .fit(vectors)
    .transform(vectors)
)
spark_pca = PCA(k=sidecar["k"], inputCol="centred", outputCol="scores").fit(centred)
comparison = pd.DataFrame(
    {
        "project (NumPy eigh)": sidecar["explained_variance"],
        "pyspark.ml PCA": spark_pca.explainedVariance.toArray(),
    },
    index=pd.RangeIndex(1, sidecar["k"] + 1, name="component"),
)
comparison["difference"] = (comparison["pyspark.ml PCA"] - comparison["project (NumPy eigh)"]).abs()
print(
    f"cumulative over k = {sidecar['k']}: project {comparison.iloc[:, 0].sum():.4f}, "
    f"pyspark.ml {comparison.iloc[:, 1].sum():.4f}; largest difference {comparison['difference'].max():.1e}"
)
comparison.head(5).round(4)

# %% [markdown]
# ## 7. The stream: project, write to the Iceberg table
#
# This is the production job, run as `fruits stream --lake <lake> --available-now` would run it: the
# same flags build the same `StreamConfig`. `start_stream` loads the featurizer spec and the PCA on the
# driver and broadcasts both; the query reads the manifests, and for each micro-batch the workers read
# and decode the clean images, featurize them, project them on the k components and the driver appends
# them to the Iceberg table `fruits.features` (images it cannot featurize go to `fruits.errors`).
# `--available-now` processes the backlog and stops by itself.

# %%
import argparse

from streaming_job.config import add_stream_arguments, config_from_args
from streaming_job.query.runner import await_stream, start_stream

parser = argparse.ArgumentParser(prog="fruits stream")
add_stream_arguments(parser)
config = config_from_args(
    parser.parse_args(["--lake", LAKE.as_uri(), "--available-now", "--stage", "notebook"])
)
clock = time.monotonic()
running = start_stream(spark, config)
ended = await_stream(spark, running, config, threading.Event())
print(
    f"stream {ended} in {time.monotonic() - clock:.1f} s (featurizer {running.model_version}, "
    f"PCA {running.pca_version})"
)
batches = pd.DataFrame(running.listener.records)
batches[["batch_id", "input_rows", "feature_rows", "error_rows", "batch_duration_ms", "model_builds"]]

# %% [markdown]
# `model_builds` counts the models Python workers built during each batch: the workers that already
# built it in steps 5 and 6 are reused and build nothing more; on EMR each executor's workers build it
# once, in the stream's first batch. The table is an Iceberg table in the lake's catalog (a SQLite
# catalog locally, Glue on AWS), partitioned by day (`dt`, a day transform of `uploaded_at`, UTC):

# %%
from fruits_lake.catalog import PCA_VERSION_PROPERTY
from fruits_lake.reading import lake_tables

features_table, _ = lake_tables(config.lake)
print(f"table fruits.features, format v{features_table.metadata.format_version}")
print(f"partition spec: {features_table.spec()}")
print(
    f"snapshots: {len(features_table.snapshots())}; "
    f"PCA recorded in its properties: {features_table.properties.get(PCA_VERSION_PROPERTY)}"
)

# %% [markdown]
# ## 8. Reading the table back
#
# The table as a data scientist reads it (pyiceberg: `scan().to_arrow()`), handed to Spark: one row per
# accepted image, its pseudonymous subject, label, coarse region and hour, and `features` = its k PCA
# scores. No raw user id, device id, coordinates or capture time is anywhere in it (checked below).

# %%
features = features_table.refresh().scan().to_arrow().to_pandas()
table_df = spark.createDataFrame(features)
table_df.select(
    "image_id", "subject_id", "label", "region", "captured_hour", F.size("features").alias("k")
).show(5, truncate=16)
personal = {
    v
    for up in uploads
    for k, v in up.metadata.items()
    if k not in (contracts.META_LABEL, contracts.META_APP_VERSION)
} | {up.name for up in uploads}
table_text = features.to_csv()
leaks = sorted(value for value in personal if value in table_text)
print(f"{len(features)} rows; personal values found: {leaks or 'none'}")

# %% [markdown]
# The saved PCA is a Spark ML `PipelineModel`: loaded with `PipelineModel.load` and applied with
# `transform` to the features of step 5, it gives the scores the stream's workers computed.

# %%
from pyspark.ml import PipelineModel

saved = PipelineModel.load(join_uri(pca_uri, sidecar["spark_model"]))
spark_scores = (
    saved.transform(vectors.withColumnRenamed("vector", "features_vector"))
    .select("image_id", vector_to_array("pca_features").alias("spark_ml"))
    .toPandas()
    .merge(features[["image_id", "features"]], on="image_id")
)
gap = max(
    float(np.abs(np.asarray(a) - np.asarray(b)).max())
    for a, b in spark_scores[["spark_ml", "features"]].values
)
print(f"{len(spark_scores)} images: Spark ML transform vs the stream's scores, largest difference {gap:.1e}")

# %% [markdown]
# ## 9. The images on the first two components, and a linear probe
#
# Each dot is an image, placed by its first two PCA scores and coloured by fruit; each axis says its
# component's share of the variance. The **linear probe** says how much of the fruit is readable from
# the k scores: a linear classifier trained and tested by 5-fold cross-validation (each image is
# predicted by a model that never saw it), compared with chance.

# %%
from demo.plots import pca_scatter_plot
from demo.quality import linear_probe_accuracy

scores = np.stack(features["features"].to_numpy())
labels = features["label"].fillna("unlabelled").tolist()
scatter_png = pca_scatter_plot(
    scores, labels, model_version, PLOTS / "scatter.png", explained_variance=sidecar["explained_variance"]
)
display(Image(filename=str(scatter_png)))
folds = min(5, int(pd.Series(labels).value_counts().min()))  # 5, or fewer on a small subset
accuracy = linear_probe_accuracy(scores, labels, folds=folds)
print(
    f"linear probe on the {scores.shape[1]} PCA scores: {accuracy:.1%} accuracy "
    f"({folds}-fold cross-validation; chance {1 / len(set(labels)):.0%})"
)

# %% [markdown]
# ## Summary
#
# The same code paths as production, on one machine: the Lambda's ingest (anonymization, quarantine),
# manifests read by Spark, the featurizer broadcast to `mapInPandas` workers, the PCA (the project's fit,
# agreeing with `pyspark.ml`'s), and the Structured Streaming job writing the Iceberg table. The
# ImageNet features (their `model_version` is printed in step 5) separate the four fruits: a few
# components hold most of the variance and the probe is near perfect, where a random-weight MobileNetV2
# scores markedly lower (docs/featurizer.md). `fruits demo` fits on the same clean images and reports
# the same k (docs/data/demo.json). 100 images make the probe indicative, not a benchmark.

# %%
spark.stop()
print(
    pd.Series(
        {
            "uploads": len(outcomes),
            "accepted": len(accepted),
            "quarantined": len(outcomes) - len(accepted),
            "featurized": len(features),
            "k": sidecar["k"],
            "explained variance": f"{sidecar['cumulative_explained_variance'][-1]:.1%}",
            "linear probe accuracy": f"{accuracy:.1%}",
            "total time (s)": round(time.monotonic() - started, 1),
        }
    ).to_string()
)
