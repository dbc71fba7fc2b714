"""Fitting the PCA with Spark ML, saving it with its sidecar, and loading it for the stream.

Layout of a fitted PCA directory (default <lake>/models/pca):
    spark_model/   the Spark ML PipelineModel: StandardScaler(withMean, no std) -> PCA(k)
    pca.json       the sidecar: k, explained variance, sample size, model_version, pca_version, fitted_at

Spark's PCA does not subtract the mean, hence the centring StandardScaler
first. The stream does not run this pipeline: it projects in the worker from
the arrays `load_pca` extracts (see projection.py), which a test proves equal
to the pipeline's `transform`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime

import numpy as np
from fruits_ingest import contracts

from streaming_job import uris
from streaming_job.config import join_uri
from streaming_job.projection import PcaProjection

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
    partitions = max(1, min(len(image_uris), spark.sparkContext.defaultParallelism))
    uri_frame = spark.createDataFrame([(uri,) for uri in image_uris], "image_uri string")
    return uri_frame.repartition(partitions).mapInPandas(
        _featurize_batches(spec_broadcast, batch_size), schema=FEATURIZED_SCHEMA
    )


def _featurize_batches(spec_broadcast, batch_size: int):
    def featurize(batches):
        import pandas as pd

        from streaming_job.featurize import featurize_uris
        from streaming_job.worker_cache import cached_featurizer, cached_image_reader

        featurizer = cached_featurizer(spec_broadcast, batch_size)
        reader = cached_image_reader()
        for batch in batches:
            image_uris = batch["image_uri"].tolist()
            result = featurize_uris(image_uris, featurizer, None, reader)
            yield pd.DataFrame(
                {
                    "image_uri": image_uris,
                    "features": result.features,
                    "reason": [error[0] if error else None for error in result.errors],
                    "detail": [error[1] if error else None for error in result.errors],
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
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import PCA, StandardScaler
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    from streaming_job.model import load_featurizer_spec

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
        scaler = StandardScaler(
            withMean=True, withStd=False, inputCol=VECTOR_COLUMN, outputCol=CENTRED_COLUMN
        )
        max_k = k or min(spec.feature_dim, sample_size - 1)
        pca = PCA(k=max_k, inputCol=CENTRED_COLUMN, outputCol=SCORES_COLUMN)
        model = _checked(spark, Pipeline(stages=[scaler, pca]).fit(vectors), vectors)
        chosen_k = k or choose_k(model.stages[-1].explainedVariance.toArray(), target_variance)
        if chosen_k != max_k:
            model = _checked(
                spark, Pipeline(stages=[scaler, pca.copy({pca.k: chosen_k})]).fit(vectors), vectors
            )
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
        "fitted_at": contracts.iso_utc(datetime.now(UTC)),
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


def components_are_valid(components: np.ndarray, explained: np.ndarray, tolerance: float = 1e-6) -> bool:
    """Orthonormal columns and non-increasing explained variance: what any correct PCA returns."""
    gram = components.T @ components
    orthonormal = np.abs(gram - np.eye(components.shape[1])).max() <= tolerance
    return bool(orthonormal and np.all(np.diff(explained) <= tolerance))


def _checked(spark, model, vectors):
    """The fitted pipeline, its PCA stage recomputed with NumPy if Spark's is numerically broken.

    Spark 4.0's PCA takes a LAPACK SVD (pure-Java fallback) of the D x D covariance.
    With fewer images than features that matrix is rank-deficient, and we saw the
    SVD intermittently return duplicated, non-orthonormal columns (depending on the
    summation order of the covariance). The covariance itself is right, so the
    eigen-decomposition is redone with numpy.linalg.eigh and put back into a
    Spark ML PCAModel: the saved pipeline stays a Spark ML model either way.
    """
    _, components, explained = _pipeline_arrays(model)
    if components_are_valid(components, explained):
        return model
    log.warning(
        "Spark's PCA returned non-orthonormal components (an unstable SVD of a rank-deficient "
        "covariance); recomputing them with numpy.linalg.eigh from Spark's covariance"
    )
    scaler_model, pca_model = model.stages
    centred = scaler_model.transform(vectors).select(CENTRED_COLUMN)
    components, explained = _eigh_components(spark, centred, pca_model.getOrDefault("k"))
    return _replace_pca_stage(spark, model, components, explained)


def _eigh_components(spark, centred, k: int) -> tuple[np.ndarray, np.ndarray]:
    from pyspark.mllib.linalg import Vectors as MLlibVectors
    from pyspark.mllib.linalg.distributed import RowMatrix

    rows = centred.rdd.map(lambda row: MLlibVectors.fromML(row[0]))
    covariance = RowMatrix(rows).computeCovariance().toArray()
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    return eigenvectors[:, order[:k]], eigenvalues[:k] / eigenvalues.sum()


def _replace_pca_stage(spark, model, components: np.ndarray, explained: np.ndarray):
    """A PipelineModel whose PCA stage holds these arrays (same uid and columns as the fitted one)."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.common import _py2java
    from pyspark.ml.feature import PCAModel
    from pyspark.ml.linalg import DenseMatrix, DenseVector

    scaler_model, fitted = model.stages
    context = spark.sparkContext
    dimension, k = components.shape
    java_pc = _py2java(context, DenseMatrix(dimension, k, components.ravel(order="F").tolist()))
    java_variance = _py2java(context, DenseVector(explained.tolist()))
    java_model = context._jvm.org.apache.spark.ml.feature.PCAModel(fitted.uid, java_pc, java_variance)
    replacement = PCAModel._from_java(java_model)
    replacement._set(k=k, inputCol=fitted.getInputCol(), outputCol=fitted.getOutputCol())
    replacement._transfer_params_to_java()
    return PipelineModel(stages=[scaler_model, replacement])


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
