"""`fruits classifier export-app`: the app's one on-device model, uint8 RGB in, class probabilities out.

Built with TensorFlow from the stream's own parts: the Keras reference featurizer
(the bundled int8 MobileNetV2 dequantized, streaming_job.featurizer.model; or the Keras
artifact itself), the PCA as a Dense layer (kernel = components, bias = -mean @
components), then the published classifier's dense layers. TFLiteConverter
turns it into one `.tflite`; its weights are quantised to int8 (dynamic range)
unless that makes the app disagree with the stream more than the float model does,
measured here on the lake's held-out labelled images (their clean JPEGs, decoded
and resized exactly as the stream does). The float model is converted only when
the quantised one disagrees with the stream on some of them.

Lake layout: <lake>/models/app/<classifier_version>/fruits.tflite + labels.txt, and
<lake>/models/app/latest.json {version, sha256, size, model, labels, input spec, agreement}.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable

import numpy as np

from fruits_core import contracts
from fruits_core.clock import utc_now
from fruits_core.lake_uris import join_uri
from streaming_job import uris
from streaming_job.scoring.classifier import Classifier, ClassifierError, load_published, read_pointer

log = logging.getLogger(__name__)

APP_DIR = contracts.APP_MODEL_PREFIX
MODEL_NAME = "fruits.tflite"
LABELS_NAME = "labels.txt"
# Images the export checks agreement on (held-out labelled rows, a fixed order).
AGREEMENT_SAMPLE = 200
# The quantised model is kept when it agrees with the stream at most this much less than the float one.
QUANTISATION_TOLERANCE = 0.005


def app_latest_uri(lake_uri: str) -> str:
    return join_uri(lake_uri, contracts.APP_MODEL_LATEST_KEY)


def keras_featurizer(spec):
    """The float Keras featurizer the stream's artifact stands for (the reference of the LiteRT one)."""
    from streaming_job.featurizer.model import DEFAULT_WEIGHTS, build_model, keras_model

    if spec.runtime == "keras":
        return build_model(spec)
    return keras_model(DEFAULT_WEIGHTS, spec.input_size)


def app_keras_model(
    featurizer, input_size: int, mean: np.ndarray, components: np.ndarray, classifier: Classifier
):
    """uint8 [1, S, S, 3] -> probabilities [1, classes]: featurizer, PCA, classifier in one graph."""
    import keras

    from streaming_job.featurizer.preprocess import MOBILENET_OFFSET, MOBILENET_SCALE

    image = keras.Input(shape=(input_size, input_size, 3), batch_size=1, dtype="uint8", name="image")
    scaled = keras.layers.Rescaling(1.0 / MOBILENET_SCALE, offset=-MOBILENET_OFFSET)(
        keras.ops.cast(image, "float32")
    )
    pca = keras.layers.Dense(components.shape[1], name="pca")
    activations = pca(featurizer(scaled))
    pca.set_weights([components.astype(np.float32), (-mean @ components).astype(np.float32)])
    layers = len(classifier.weights)
    for position, (weight, bias) in enumerate(zip(classifier.weights, classifier.biases, strict=True)):
        last = position == layers - 1
        dense = keras.layers.Dense(
            weight.shape[1], activation="softmax" if last else "relu", name=f"classifier_{position}"
        )
        activations = dense(activations)
        dense.set_weights([weight, bias])
    return keras.Model(image, activations, name="fruits_app")


def convert(model, quantise: bool) -> bytes:
    """The Keras model as a TFLite flatbuffer with one `serving_default` signature (input `image`).

    The model is traced once and its weights frozen into constants before the converter sees it:
    `from_keras_model` exports a SavedModel through Keras first, which traces the graph's functions
    again and again, for the same flatbuffer (11.6 -> 2.9 CPU-seconds at 96 px, docs/testing.md).
    """
    import tensorflow as tf

    # No public TF 2 API freezes a function's variables; TFLiteConverter calls this very function itself.
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    shape = [int(value) for value in model.input.shape]
    serve = tf.function(
        lambda image: model(image, training=False),
        input_signature=[tf.TensorSpec(shape, tf.uint8, name="image")],
    )
    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
    with tempfile.TemporaryDirectory(prefix="fruits-app-model-") as scratch:
        tf.saved_model.save(tf.Module(), scratch, signatures={"serving_default": frozen})
        converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
        if quantise:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


def pick_candidate(
    quantised: bytes, agree: Callable[[bytes], float], convert_float: Callable[[], bytes], checked: bool
) -> tuple[bytes, bool, dict[bool, float]]:
    """(model, whether it is the quantised one, {quantised?: agreement}) of the export's two candidates.

    The quantised model is kept unless the float one agrees with the stream more than
    QUANTISATION_TOLERANCE better. When the quantised model already agrees within the tolerance of
    every image, no float model can, so that one is not converted (a conversion of the whole graph).
    `checked`: there are held-out images to measure on (else the quantised model is kept unmeasured).
    """
    if not checked:
        return quantised, True, {True: float("nan")}
    agreements = {True: agree(quantised)}
    if agreements[True] >= 1.0 - QUANTISATION_TOLERANCE:
        return quantised, True, agreements
    float_model = convert_float()
    agreements[False] = agree(float_model)
    keep_quantised = agreements[True] >= agreements[False] - QUANTISATION_TOLERANCE
    return (quantised if keep_quantised else float_model), keep_quantised, agreements


class AppRunner:
    """The exported model in LiteRT's interpreter, one image at a time (as the app runs it)."""

    def __init__(self, model_bytes: bytes, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=model_bytes, num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]

    @property
    def input_shape(self) -> list[int]:
        return [int(value) for value in self._input["shape"]]

    def probabilities(self, image_uint8: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input["index"], image_uint8[None])
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"])[0].copy()


def agreement(
    model_bytes: bytes, images: list[np.ndarray], expected: list[str], labels: tuple[str, ...]
) -> float:
    """Share of `images` the app model labels as `expected` (the stream's predictions)."""
    if not images:
        return float("nan")
    runner = AppRunner(model_bytes)
    hits = sum(
        labels[int(np.argmax(runner.probabilities(image)))] == want
        for image, want in zip(images, expected, strict=True)
    )
    return round(hits / len(images), 4)


def stream_predictions(
    lake_uri: str, classifier: Classifier, input_size: int
) -> tuple[list[np.ndarray], list[str]]:
    """Held-out labelled images of the lake (decoded as the stream does) and the classifier's label for each.

    The label is the classifier applied to the row's stored PCA features: exactly what the stream writes.
    """
    from fruits_classifier.training import is_held_out
    from fruits_lake.reading import read_features
    from streaming_job.featurizer.preprocess import decode_and_resize

    rows = read_features(lake_uri).select(["image_id", "uploaded_at", "features"]).to_pylist()
    rows = sorted((row for row in rows if is_held_out(row["image_id"])), key=lambda row: row["image_id"])
    images, expected = [], []
    for row in rows[:AGREEMENT_SAMPLE]:
        key = contracts.clean_image_key(contracts.partition_date(row["uploaded_at"]), row["image_id"])
        try:
            data = uris.read_bytes(join_uri(lake_uri, key))
        except FileNotFoundError:
            continue  # erased or expired since: not part of the check
        images.append(decode_and_resize(data, input_size))
        label, _ = classifier.predict(np.asarray([row["features"]], dtype=np.float32))
        expected.append(label[0])
    return images, expected


def export_app_model(lake_uri: str, featurizer_uri: str, pca_uri: str, spark=None) -> dict:
    """Build, check and publish the app model of the lake's current classifier; return its latest.json.

    `spark`: a running session to load the PCA with (else the active one, or one started and stopped
    here: a session this call did not start is never stopped, since others share it).
    """
    from streaming_job.featurizer.model import FeaturizerError, load_featurizer_spec
    from streaming_job.featurizer.pca import PcaError, load_pca
    from streaming_job.session import command_session

    pointer = read_pointer(lake_uri)
    if pointer is None:
        raise ClassifierError(f"{lake_uri} has no published classifier: run `fruits classifier train` first")
    try:
        spec = load_featurizer_spec(featurizer_uri)
        if spark is not None:
            projection = load_pca(spark, pca_uri, spec.model_version)
        else:
            with command_session("fruits-export-app", master="local[1]") as session:
                projection = load_pca(session, pca_uri, spec.model_version)
    except (FeaturizerError, PcaError) as error:
        raise ClassifierError(str(error)) from error
    classifier = load_published(lake_uri, pointer, projection.pca_version)
    model = app_keras_model(
        keras_featurizer(spec), spec.input_size, projection.mean, projection.components, classifier
    )
    images, expected = stream_predictions(lake_uri, classifier, spec.input_size)
    data, quantised, agreements = pick_candidate(
        convert(model, quantise=True),
        lambda candidate: agreement(candidate, images, expected, classifier.labels),
        lambda: convert(model, quantise=False),
        checked=bool(images),
    )
    folder = join_uri(lake_uri, APP_DIR, classifier.version)
    uris.write_bytes(join_uri(folder, LABELS_NAME), "\n".join(classifier.labels).encode() + b"\n")
    uris.write_bytes(join_uri(folder, MODEL_NAME), data)
    latest = {
        "version": classifier.version,
        "model": f"{APP_DIR}{classifier.version}/{MODEL_NAME}",
        "labels": f"{APP_DIR}{classifier.version}/{LABELS_NAME}",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "input": {
            "shape": [1, spec.input_size, spec.input_size, 3],
            "dtype": "uint8",
            "colour": "RGB",
            "resize": (
                "the whole image to S x S, bilinear, aspect not kept (streaming_job.featurizer.preprocess)"
            ),
        },
        "output": {
            "shape": [1, len(classifier.labels)],
            "dtype": "float32",
            "meaning": "class probabilities",
        },
        "quantisation": "dynamic-range int8 weights" if quantised else "none (float32)",
        "agreement_with_stream": agreements[quantised],
        "agreement_float32": agreements.get(False),  # None: not converted (pick_candidate)
        "agreement_images": len(images),
        "featurizer": spec.model_version,
        "pca_version": projection.pca_version,
        "exported_at": contracts.iso_utc(utc_now()),
    }
    uris.write_bytes(app_latest_uri(lake_uri), json.dumps(latest, indent=2).encode())
    log.info("app model %s: %d bytes, agreement %.4f", classifier.version, len(data), agreements[quantised])
    return latest
