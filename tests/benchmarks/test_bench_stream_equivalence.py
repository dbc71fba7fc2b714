"""The tuned stream computes what a straightforward runtime + Spark ML reference computes (to 1e-4).

The reference runs the benchmark lake's LiteRT artifact the plain way, one interpreter invoked
image by image, then the Spark ML `PipelineModel`. The Keras runtime goes through the same stream
code (featurize_uris, the worker cache, the projection); that its workers compute what Keras
computes is proven by tests/streaming/test_pca.py and test_model.py, without a lake of its own.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fruits_core import contracts
from fruits_core.lake_uris import join_uri
from streaming_job import uris
from streaming_job.config import StreamConfig
from streaming_job.featurizer.pca import CENTRED_COLUMN, SCORES_COLUMN, SPARK_MODEL_DIR, VECTOR_COLUMN
from streaming_job.featurizer.preprocess import decode_and_resize

TOLERANCE = 1e-4

pytestmark = [pytest.mark.spark, pytest.mark.tf, pytest.mark.slow]


def plain_features(artifact_uri: str, pixels: np.ndarray) -> np.ndarray:
    """The raw 1280-d features of uint8 images, without the project's runtime classes."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(uris.local_path(artifact_uri)))
    interpreter.allocate_tensors()
    image, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero_point = output["quantization"]
    features = []
    for single in pixels:
        interpreter.set_tensor(image["index"], single[None])
        interpreter.invoke()
        features.append(
            (interpreter.get_tensor(output["index"]).reshape(-1).astype(np.float64) - zero_point) * scale
        )
    return np.stack(features)


def reference_features(
    workload, runtime: str, image_uris: list[str], spark
) -> dict[str, tuple[np.ndarray, float]]:
    """image_uri -> (PCA scores, residual), the plain way: the runtime, then PipelineModel.transform."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import array_to_vector, vector_to_array

    size = workload.spec.input_size
    pixels = np.stack([decode_and_resize(uris.local_path(uri).read_bytes(), size) for uri in image_uris])
    raw = plain_features(workload.featurizer_uri(runtime), pixels)
    rows = [(uri, [float(value) for value in vector]) for uri, vector in zip(image_uris, raw, strict=True)]
    frame = spark.createDataFrame(rows, "image_uri string, raw array<double>")
    pipeline = PipelineModel.load(join_uri(workload.pca_uri(runtime), SPARK_MODEL_DIR))
    projected = pipeline.transform(frame.select("image_uri", array_to_vector("raw").alias(VECTOR_COLUMN)))
    rows = projected.select(
        "image_uri",
        vector_to_array(CENTRED_COLUMN).alias("centred"),
        vector_to_array(SCORES_COLUMN).alias("scores"),
    ).collect()
    components = pipeline.stages[-1].pc.toArray()
    reference = {}
    for row in rows:
        centred, scores = np.asarray(row["centred"]), np.asarray(row["scores"])
        reference[row["image_uri"]] = (scores, float(np.linalg.norm(centred - components @ scores)))
    return reference


def test_tuned_stream_equals_the_plain_runtime_then_spark_pca_transform(spark, tiny_workload):
    # GIVEN the benchmark lake: N manifests of real images, the LiteRT featurizer and its fitted PCA
    from fruits_lake.reading import read_features
    from streaming_job.query.runner import await_stream, start_stream

    runtime = "litert"
    tiny_workload.clear_run_outputs()
    lake = tiny_workload.lake_uri
    config = StreamConfig(
        lake=lake,
        checkpoint=join_uri(lake, contracts.CHECKPOINTS_PREFIX, "features"),
        featurizer=tiny_workload.featurizer_uri(runtime),
        pca=tiny_workload.pca_uri(runtime),
        available_now=True,
        max_files_per_trigger=8,
        stage="test",
    )
    manifests = {uri.rsplit("/", 1)[-1].removesuffix(".jpg"): uri for uri in tiny_workload.image_uris()}

    # WHEN the stream (the session's tuned settings, cached worker models) backfills it
    await_stream(spark, start_stream(spark, config), config, threading.Event())
    features = read_features(lake).to_pandas()

    # THEN every image is featurized once, equal to the reference within 1e-4
    assert sorted(features["image_id"]) == sorted(manifests)
    reference = reference_features(tiny_workload, runtime, list(manifests.values()), spark)
    for row in features.itertuples():
        scores, residual = reference[manifests[row.image_id]]
        assert len(row.features) == tiny_workload.spec.k
        np.testing.assert_allclose(np.asarray(row.features, dtype=np.float64), scores, rtol=0, atol=TOLERANCE)
        assert row.pca_residual == pytest.approx(residual, rel=TOLERANCE, abs=TOLERANCE)
        assert row.model_version == tiny_workload.model_versions[runtime]
