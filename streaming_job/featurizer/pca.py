"""Fitting the PCA with Spark ML, saving it with its sidecar, and loading it for the stream.

Layout of a fitted PCA directory (default <lake>/models/pca):
    spark_model/   the Spark ML PipelineModel: StandardScaler(withMean, no std) -> PCA(k)
    pca.json       the sidecar: k, explained variance, sample size, model_version, pca_version, fitted_at

Spark's PCAModel projects without subtracting the mean, hence the centring
StandardScaler stage first. The principal components are the eigenvectors of the covariance that
Spark computes; the eigen-decomposition itself is numpy's `eigh`, because
Spark 4.0.1's own (an SVD through netlib's pure-Java LAPACK fallback) returns
wrong components on the rank-deficient covariance of fewer images than
features, intermittently and sometimes orthonormal, so no check can catch it.
The stream does not run this pipeline: it projects in the worker from
the arrays `load_pca` extracts (see projection.py), which a test proves equal
to the pipeline's `transform`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import uuid
from pathlib import Path

import numpy as np

from fruits_core import contracts
from fruits_core.clock import utc_now
from fruits_core.lake_uris import join_uri
from streaming_job import uris
from streaming_job.featurizer.projection import PcaProjection

log = logging.getLogger(__name__)

SPARK_MODEL_DIR = "spark_model"
SIDECAR_NAME = "pca.json"
DEFAULT_TARGET_VARIANCE = 0.95
FEATURES_COLUMN = "features"
VECTOR_COLUMN = "features_vector"
CENTRED_COLUMN = "centred"
SCORES_COLUMN = "pca_features"
# What the featurizing mapInPandas returns: one row per image, features or an error.
FEATURIZED_SCHEMA = "image_uri string, features array<float>, reason string, detail string"


class PcaError(RuntimeError):
    """The PCA cannot be fitted or loaded; the message says why and what to do."""


class PcaVersionMismatch(PcaError):
    """The PCA was fitted on features of another featurizer model_version."""


def choose_k(explained_variance: list[float] | np.ndarray, target_variance: float) -> int:
    """The fewest leading components whose cumulative explained variance reaches the target."""
    if not 0 < target_variance <= 1:
        raise ValueError(f"target variance must be in (0, 1], got {target_variance}")
    cumulative = np.cumsum(np.asarray(explained_variance, dtype=np.float64))
    if len(cumulative) == 0:
        raise ValueError("no explained variance to choose k from")
    reached = np.nonzero(cumulative >= target_variance - 1e-12)[0]
    return int(reached[0]) + 1 if len(reached) else len(cumulative)


def featurize_images(spark, image_uris: list[str], spec_broadcast, batch_size: int = 64):
    """A DataFrame of FEATURIZED_SCHEMA: the full feature vector of each image, or why it failed."""
    import pandas as pd

    partitions = max(1, min(len(image_uris), spark.sparkContext.defaultParallelism))
    # From pandas, through Arrow: the JVM reads the list as it is. From a list of tuples, PySpark
    # would pickle it through Python workers of their own (a second worker daemon in local mode).
    uri_frame = spark.createDataFrame(pd.DataFrame({"image_uri": image_uris}), "image_uri string")
    return uri_frame.repartition(partitions).mapInPandas(
        _featurize_batches(spec_broadcast, batch_size), schema=FEATURIZED_SCHEMA
    )


def _featurize_batches(spec_broadcast, batch_size: int):
    def featurize(batches):
        import pandas as pd

        from streaming_job.featurizer.featurize import featurize_uris
        from streaming_job.featurizer.worker_cache import cached_featurizer, cached_image_reader

        featurizer = cached_featurizer(spec_broadcast, batch_size)
        reader = cached_image_reader()
        for batch in batches:
            image_uris = batch["image_uri"].tolist()
            result = featurize_uris(image_uris, featurizer, None, reader)
            yield pd.DataFrame(
                {
                    "image_uri": image_uris,
                    "features": result.features,
                    "reason": result.reasons,
                    "detail": result.details,
                }
            )

    return featurize


def fit_pca(
    spark,
    image_uris: list[str],
    featurizer_uri: str,
    out_uri: str,
    k: int | None = None,
    target_variance: float = DEFAULT_TARGET_VARIANCE,
    batch_size: int = 64,
) -> dict:
    """Featurize the images, fit centring + PCA, save model and sidecar under `out_uri`; return the sidecar.

    k is fixed when given, else the fewest components explaining `target_variance`.
    Images that cannot be read or decoded are counted and left out.
    """
    from pyspark.ml.feature import StandardScaler
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    from streaming_job.featurizer.model import load_featurizer_spec

    if k is not None and k < 1:
        raise PcaError(f"k must be >= 1, got {k}")
    if not 0 < target_variance <= 1:
        raise PcaError(f"target variance must be in (0, 1], got {target_variance}")
    _require_sample(len(image_uris), k, "listed")
    spec = load_featurizer_spec(featurizer_uri)
    if k is not None and k > spec.feature_dim:
        raise PcaError(f"k={k} exceeds the feature dimension {spec.feature_dim}")
    spec_broadcast = spark.sparkContext.broadcast(spec)
    featurized = featurize_images(spark, image_uris, spec_broadcast, batch_size).persist()
    try:
        good = featurized.filter(F.col("reason").isNull())
        sample_size = good.count()
        failed = featurized.count() - sample_size
        if failed:
            log.warning("%d of %d images could not be featurized and were left out", failed, len(image_uris))
        _require_sample(sample_size, k, "featurizable")
        vectors = good.select(array_to_vector(FEATURES_COLUMN).alias(VECTOR_COLUMN))
        scaler_model = StandardScaler(
            withMean=True, withStd=False, inputCol=VECTOR_COLUMN, outputCol=CENTRED_COLUMN
        ).fit(vectors)
        centred = scaler_model.transform(vectors).select(CENTRED_COLUMN)
        components, explained = principal_components(_covariance(centred))
        max_k = k or min(spec.feature_dim, sample_size - 1)
        chosen_k = k or choose_k(explained[:max_k], target_variance)
        model = _pipeline_model(spark, scaler_model, components[:, :chosen_k], explained[:chosen_k])
    finally:
        featurized.unpersist()
        spec_broadcast.unpersist()
    model.write().overwrite().save(join_uri(out_uri, SPARK_MODEL_DIR))
    mean, components, explained = _pipeline_arrays(model)
    sidecar = {
        "pca_version": pca_version_of(spec.model_version, mean, components),
        "model_version": spec.model_version,
        "k": chosen_k,
        "feature_dim": spec.feature_dim,
        "explained_variance": [float(value) for value in explained],
        "cumulative_explained_variance": [float(value) for value in np.cumsum(explained)],
        "target_variance": None if k else target_variance,
        "sample_size": sample_size,
        "images_failed": failed,
        "fitted_at": contracts.iso_utc(utc_now()),
        "spark_model": SPARK_MODEL_DIR,
    }
    uris.write_bytes(join_uri(out_uri, SIDECAR_NAME), json.dumps(sidecar, indent=2).encode())
    log.info(
        "PCA %s fitted: k=%d explains %.3f of the variance over %d images",
        sidecar["pca_version"],
        chosen_k,
        sidecar["cumulative_explained_variance"][-1],
        sample_size,
    )
    return sidecar


def read_sidecar(pca_uri: str) -> dict:
    try:
        return json.loads(uris.read_bytes(join_uri(pca_uri, SIDECAR_NAME)))
    except FileNotFoundError as error:
        raise PcaError(
            f"no fitted PCA at {pca_uri} (missing {SIDECAR_NAME}): run `fruits fit-pca`"
        ) from error


def load_pca(spark, pca_uri: str, expected_model_version: str) -> PcaProjection:
    """Driver side: the projection arrays of a saved PCA; refuses one fitted on another model_version."""
    from pyspark.ml import PipelineModel

    sidecar = read_sidecar(pca_uri)
    if sidecar["model_version"] != expected_model_version:
        raise PcaVersionMismatch(
            f"the PCA at {pca_uri} ({sidecar['pca_version']}) was fitted on featurizer "
            f"{sidecar['model_version']}, but the featurizer is {expected_model_version}: "
            "refit it with `fruits fit-pca` after changing the model"
        )
    model_uri = join_uri(pca_uri, sidecar.get("spark_model", SPARK_MODEL_DIR))
    try:
        model = PipelineModel.load(model_uri)
    except Exception as error:
        raise PcaError(
            f"cannot load the Spark ML model at {model_uri}: {error}; refit it with `fruits fit-pca`"
        ) from error
    mean, components, explained = _pipeline_arrays(model)
    if components.shape[1] != sidecar["k"]:
        raise PcaError(f"{pca_uri}: sidecar says k={sidecar['k']}, the saved model has {components.shape[1]}")
    return PcaProjection(
        mean=mean,
        components=components,
        k=int(sidecar["k"]),
        explained_variance=[float(value) for value in explained],
        model_version=sidecar["model_version"],
        pca_version=sidecar["pca_version"],
    )


def pca_version_of(model_version: str, mean: np.ndarray, components: np.ndarray) -> str:
    """The PCA's version: pca-k<k>-<12 hex of a hash of the featurizer version and the fitted arrays>."""
    digest = hashlib.sha256(model_version.encode())
    digest.update(np.ascontiguousarray(mean, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(components, dtype=np.float64).tobytes())
    return f"pca-k{components.shape[1]}-{digest.hexdigest()[:12]}"


def principal_components(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(components [D, D], explained variance ratio [D]) of a covariance, largest first.

    numpy.linalg.eigh of the symmetric covariance is exact and deterministic; each
    component's sign is fixed (its largest-magnitude entry positive) so that
    refits of the same data give the same model.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    components = eigenvectors[:, order]
    largest = components[np.abs(components).argmax(axis=0), np.arange(components.shape[1])]
    components = components * np.where(largest < 0, -1.0, 1.0)
    total = eigenvalues.sum()
    if total <= 0:
        raise PcaError("the sample's features do not vary: no principal component to fit")
    return components, eigenvalues / total


def _covariance(centred) -> np.ndarray:
    """The D x D covariance of the vectors in `centred`'s CENTRED_COLUMN, computed by Spark (distributed).

    The JVM driver writes the matrix to a local file that NumPy reads: py4j would send its
    D x D doubles (13 MB for D = 1,280) over the gateway and decode them one byte at a time in
    Python, about 3 CPU-seconds a fit (docs/stream.md). The Python and JVM drivers share a host
    (local mode, and the YARN container of a cluster-mode driver).
    """
    jvm = centred.sparkSession.sparkContext._jvm
    # The vectors stay in the JVM, converted as Spark ML's own PCA converts them: a Python map over
    # `centred.rdd` would pickle every 1,280-double row through Python workers of their own.
    rows = jvm.org.apache.spark.ml.util.DatasetUtils.columnToOldVector(centred._jdf, CENTRED_COLUMN)
    covariance = jvm.org.apache.spark.mllib.linalg.distributed.RowMatrix(rows).computeCovariance()
    dimension = covariance.numRows()
    # Java objects only: py4j would copy a byte[] into Python, not a ByteBuffer or a double[].
    buffer = jvm.java.nio.ByteBuffer.allocate(8 * dimension * dimension)
    buffer.order(jvm.java.nio.ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().put(covariance.toArray())
    with tempfile.TemporaryDirectory(prefix="fruits-covariance-") as scratch:
        path = Path(scratch) / "covariance.f64"
        stream = jvm.java.io.FileOutputStream(str(path))
        try:
            channel = stream.getChannel()
            while buffer.hasRemaining():
                channel.write(buffer)
        finally:
            stream.close()
        values = np.fromfile(path, dtype="<f8")
    return values.reshape((dimension, dimension), order="F")  # DenseMatrix stores columns first


def _pipeline_model(spark, scaler_model, components: np.ndarray, explained: np.ndarray):
    """The Spark ML PipelineModel (fitted centring -> PCAModel holding these arrays) that is saved."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.common import _py2java
    from pyspark.ml.feature import PCAModel
    from pyspark.ml.linalg import DenseMatrix, DenseVector

    context = spark.sparkContext
    dimension, k = components.shape
    java_pc = _py2java(context, DenseMatrix(dimension, k, components.ravel(order="F").tolist()))
    java_variance = _py2java(context, DenseVector(explained.tolist()))
    uid = f"PCA_{uuid.uuid4().hex[:12]}"
    java_model = context._jvm.org.apache.spark.ml.feature.PCAModel(uid, java_pc, java_variance)
    pca_model = PCAModel._from_java(java_model)
    pca_model._set(k=k, inputCol=CENTRED_COLUMN, outputCol=SCORES_COLUMN)
    pca_model._transfer_params_to_java()
    return PipelineModel(stages=[scaler_model, pca_model])


def _pipeline_arrays(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean [D], components [D, k], explained variance [k]) of the StandardScaler -> PCA pipeline."""
    scaler_model, pca_model = model.stages
    mean = scaler_model.mean.toArray().astype(np.float64)
    components = pca_model.pc.toArray().astype(np.float64)  # DenseMatrix is column-major: toArray handles it
    return mean, components, pca_model.explainedVariance.toArray().astype(np.float64)


def _require_sample(count: int, k: int | None, what: str) -> None:
    needed = (k + 1) if k else 2
    if count < needed:
        raise PcaError(
            f"too few {what} images to fit a PCA with k={k or 'auto'}: need >= {needed}, got {count}"
        )
