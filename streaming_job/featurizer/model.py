"""The featurizer artifact: export it, load it on the driver, describe it for the workers.

A featurizer maps an RGB image to MobileNetV2's 1280 pooled features. One
artifact runs in one runtime, named by its suffix (`contracts.FEATURIZER_SUFFIXES`):

- `.tflite`, runtime `litert` (the default): the bundled ImageNet int8 model
  (`models/`), cut after the global pool (`tflite_graph`), run by LiteRT's
  interpreter. About four times faster than float TensorFlow on a CPU.
- `.keras`, runtime `keras`: float32 TensorFlow. Its weights are one of
  `imagenet-int8` (the same bundled file, dequantized: the reference for the
  LiteRT runtime), `imagenet` (downloaded by Keras: needs the internet) or
  `seeded` (random weights with calibrated batch norms, for comparison only).

The driver loads an artifact once into a spec (small and picklable) that it
broadcasts; workers build their model or interpreter from the spec without I/O.

`model_version` = "<weights>-<runtime>-<input size>-<12 hex>": the hex is a
SHA-256 of the `.tflite` bytes, or of a Keras model's name, shapes and weights
(not of the `.keras` file, into which Keras stamps the save time).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from fruits_core import contracts
from streaming_job import uris
from streaming_job.featurizer.preprocess import decode_and_resize, scale_for_mobilenet
from streaming_job.featurizer.runtimes import DEFAULT_BATCH_SIZE, KerasFeaturizer, LiteRtFeaturizer

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_IMAGES = REPO_ROOT / "data" / "fruits360-sample"
# ImageNet MobileNetV2, int8 (Apache 2.0; attribution and license beside it).
BUNDLED_MODEL = REPO_ROOT / "models" / "mobilenet_v2_1.0_224_int8.tflite"

RUNTIMES = tuple(contracts.FEATURIZER_SUFFIXES)
DEFAULT_RUNTIME = contracts.DEFAULT_RUNTIME
WEIGHT_CHOICES = ("imagenet-int8", "imagenet", "seeded")
DEFAULT_WEIGHTS = "imagenet-int8"
# The model names that `model_version` starts with, one per weights choice.
MODEL_NAMES = {weights: f"mobilenetv2-{weights}" for weights in WEIGHT_CHOICES}
# The only input sizes Keras publishes ImageNet MobileNetV2 weights for.
IMAGENET_INPUT_SIZES = (96, 128, 160, 192, 224)
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 32, 512
SEED = 20240917
# Images in the one batch-norm calibration pass of a seeded export (spread over the classes).
CALIBRATION_BATCH = 64


class FeaturizerError(RuntimeError):
    """The featurizer cannot be exported or loaded; the message says why and what to do."""


@dataclass(frozen=True)
class KerasSpec:
    """What the driver broadcasts for the `keras` runtime: architecture and weights."""

    runtime: ClassVar[str] = "keras"
    model_version: str
    input_size: int
    feature_dim: int
    architecture_json: str
    weights: list[np.ndarray]


@dataclass(frozen=True)
class LiteRtSpec:
    """What the driver broadcasts for the `litert` runtime: the `.tflite` bytes (2.8 MB)."""

    runtime: ClassVar[str] = "litert"
    model_version: str
    input_size: int
    feature_dim: int
    model_bytes: bytes


FeaturizerSpec = KerasSpec | LiteRtSpec


def runtime_of(uri: str) -> str:
    """The runtime an artifact runs in, from its suffix."""
    runtime = contracts.featurizer_runtime(str(uri))
    if runtime is not None:
        return runtime
    suffixes = " or ".join(contracts.FEATURIZER_SUFFIXES.values())
    raise FeaturizerError(f"a featurizer artifact is a {suffixes} file, got {uri!r}")


def is_random_weights(model_version: str) -> bool:
    """True for a seeded featurizer: its features are random projections, not ImageNet features."""
    return model_version.startswith(f"{MODEL_NAMES['seeded']}-")


def export_featurizer(
    out_uri: str,
    input_size: int = 224,
    weights: str = DEFAULT_WEIGHTS,
    calibration_images: list[Path] | None = None,
) -> str:
    """Write the featurizer artifact to `out_uri` (path, file:// or s3://); return its model_version.

    The runtime follows from the suffix of `out_uri` (`.tflite` or `.keras`).
    """
    runtime = runtime_of(out_uri)
    if weights not in WEIGHT_CHOICES:
        raise FeaturizerError(f"weights must be one of {WEIGHT_CHOICES}, got {weights!r}")
    if not MIN_INPUT_SIZE <= input_size <= MAX_INPUT_SIZE:
        raise FeaturizerError(f"input size must be in {MIN_INPUT_SIZE}..{MAX_INPUT_SIZE}, got {input_size}")
    if runtime == "litert":
        if weights != "imagenet-int8":
            raise FeaturizerError(
                f"the litert runtime runs the bundled int8 model (--weights imagenet-int8); "
                f"--weights {weights} needs --runtime keras"
            )
        data = litert_artifact(input_size)
        version = _litert_spec(data, out_uri).model_version
        uris.write_bytes(uris.to_uri(out_uri), data)
    else:
        model = keras_model(weights, input_size, calibration_images)
        version = model_version_of(model)
        with tempfile.TemporaryDirectory(prefix="featurizer-") as work_dir:
            local_file = Path(work_dir, "featurizer.keras")
            with warnings.catch_warnings():
                # Keras' own saving code trips NumPy 2's __array__(copy=...) deprecation: not ours to fix.
                warnings.simplefilter("ignore", DeprecationWarning)
                model.save(local_file)
            uris.write_bytes(uris.to_uri(out_uri), local_file.read_bytes())
    log.info("featurizer %s written (input %dx%d)", version, input_size, input_size)
    return version


def litert_artifact(input_size: int) -> bytes:
    """The bundled int8 model cut at its pooled features, for inputs of `input_size` pixels."""
    from streaming_job.featurizer.tflite_graph import cut_at_pooled_features

    description = {"weights": MODEL_NAMES["imagenet-int8"], "input_size": input_size}
    return cut_at_pooled_features(bundled_model_bytes(), input_size, description)


def bundled_model_bytes() -> bytes:
    try:
        return BUNDLED_MODEL.read_bytes()
    except FileNotFoundError as error:
        raise FeaturizerError(f"the bundled model {BUNDLED_MODEL} is missing from this checkout") from error


def load_featurizer_spec(uri: str) -> FeaturizerSpec:
    """Driver side: read an artifact (file:// or s3://) into a broadcastable spec."""
    runtime = runtime_of(uri)
    try:
        data = uris.read_bytes(uris.to_uri(uri))
    except FileNotFoundError as error:
        raise FeaturizerError(
            f"no featurizer artifact at {uri}: create it with `fruits model export`"
        ) from error
    return _litert_spec(data, uri) if runtime == "litert" else _keras_spec(data, uri)


def _litert_spec(data: bytes, uri: str) -> LiteRtSpec:
    from streaming_job.featurizer.tflite_graph import GraphError, featurizer_description

    try:
        description = featurizer_description(data)
    except GraphError as error:
        raise FeaturizerError(f"{uri} is not a featurizer: {error}") from error
    if description is None:
        raise FeaturizerError(f"{uri} is a TFLite model but not one written by `fruits model export`")
    input_size = int(description["input_size"])
    version = f"{description['weights']}-litert-{input_size}-{hashlib.sha256(data).hexdigest()[:12]}"
    try:
        feature_dim = LiteRtFeaturizer(data, version, input_size).feature_dim
    except (ValueError, RuntimeError) as error:
        raise FeaturizerError(f"{uri} cannot be run by LiteRT: {error}") from error
    return LiteRtSpec(version, input_size, feature_dim, data)


def _keras_spec(data: bytes, uri: str) -> KerasSpec:
    import keras

    with tempfile.TemporaryDirectory(prefix="featurizer-") as work_dir:
        local_file = Path(work_dir, "featurizer.keras")
        local_file.write_bytes(data)
        try:
            model = keras.saving.load_model(local_file, compile=False, safe_mode=True)
        except Exception as error:
            raise FeaturizerError(f"{uri} is not a loadable Keras model: {error}") from error
    input_size, feature_dim = _featurizer_shape(model, uri)
    return KerasSpec(
        model_version=model_version_of(model),
        input_size=input_size,
        feature_dim=feature_dim,
        architecture_json=model.to_json(),
        weights=weight_arrays(model),
    )


def build_model(spec: KerasSpec):
    """Worker side: the Keras model from the spec's architecture and weights (no file I/O)."""
    import keras

    model = keras.models.model_from_json(spec.architecture_json)
    model.set_weights(spec.weights)
    return model


def build_featurizer(spec, batch_size: int = DEFAULT_BATCH_SIZE, threads: int = 1, keras_model=None):
    """Worker side: the runtime's featurizer for a broadcast spec (`KerasSpec` or `LiteRtSpec`).

    `keras_model` reuses a Keras model already built from the same spec.
    """
    if spec.runtime == "litert":
        return LiteRtFeaturizer(
            spec.model_bytes, spec.model_version, spec.input_size, threads=threads, batch_size=batch_size
        )
    model = keras_model if keras_model is not None else build_model(spec)
    return KerasFeaturizer(model, spec.model_version, batch_size=batch_size)


def model_version_of(model) -> str:
    """A Keras model's version: <name>-keras-<input size>-<12 hex of a SHA-256 over name, shapes, weights>."""
    input_size, feature_dim = _featurizer_shape(model, model.name)
    digest = hashlib.sha256(f"{model.name}|{input_size}|{feature_dim}".encode())
    for array in weight_arrays(model):
        digest.update(f"|{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return f"{model.name}-keras-{input_size}-{digest.hexdigest()[:12]}"


def weight_arrays(model) -> list[np.ndarray]:
    """The model's weights as C-contiguous NumPy arrays, in `set_weights` order."""
    return [np.ascontiguousarray(variable.numpy()) for variable in model.weights]


def bundled_calibration_images() -> list[Path]:
    """The real sample images shipped with the repository (data/fruits360-sample/<label>/*.jpg)."""
    return sorted(BUNDLED_IMAGES.glob("*/*.jpg"))


def keras_model(weights: str, input_size: int, calibration_images: list[Path] | None = None):
    """The float Keras MobileNetV2 featurizer (no top, average pooling) with the chosen weights."""
    if weights == "imagenet":
        return _imagenet_model(input_size)
    if weights == "imagenet-int8":
        return _dequantized_model(input_size)
    return _seeded_model(
        input_size, calibration_images if calibration_images is not None else bundled_calibration_images()
    )


def _featurizer_shape(model, where: str) -> tuple[int, int]:
    input_shape, output_shape = tuple(model.input_shape), tuple(model.output_shape)
    if len(input_shape) != 4 or input_shape[1] != input_shape[2] or input_shape[3] != 3 or not input_shape[1]:
        raise FeaturizerError(f"{where}: expected a square RGB input [batch, S, S, 3], got {input_shape}")
    if len(output_shape) != 2 or not output_shape[1]:
        raise FeaturizerError(f"{where}: expected a feature-vector output [batch, D], got {output_shape}")
    return int(input_shape[1]), int(output_shape[1])


def _mobilenet_v2(input_size: int, weights: str, keras_weights: str | None):
    import keras

    return keras.applications.MobileNetV2(
        input_shape=(input_size, input_size, 3),
        include_top=False,
        weights=keras_weights,
        pooling="avg",
        name=MODEL_NAMES[weights],
    )


def _imagenet_model(input_size: int):
    if input_size not in IMAGENET_INPUT_SIZES:
        raise FeaturizerError(f"Keras' ImageNet weights exist only for input sizes {IMAGENET_INPUT_SIZES}")
    try:
        return _mobilenet_v2(input_size, "imagenet", "imagenet")
    except Exception as error:
        raise FeaturizerError(
            f"could not obtain the ImageNet weights ({error}). They are downloaded by Keras and need "
            "internet access (or a pre-filled ~/.keras/models cache, see KERAS_HOME); offline, "
            "use the bundled --weights imagenet-int8 (the default)"
        ) from error


def _dequantized_model(input_size: int):
    """Keras MobileNetV2 carrying the bundled int8 model's weights, dequantized to float32.

    The file's 52 feature convolutions (35 plain, 17 depthwise) map one to one, in
    order, onto the Keras model's Conv2D/DepthwiseConv2D layers. Batch norm is folded into the int8
    convolutions, so each following BatchNormalization becomes "add the bias":
    gamma 1, beta = bias, mean 0, variance 1 - epsilon.
    """
    import keras

    from streaming_job.featurizer.tflite_graph import feature_convolutions

    model = _mobilenet_v2(input_size, "imagenet-int8", None)
    convolutions = feature_convolutions(bundled_model_bytes())
    layers = model.layers
    conv_layers = [
        (position, layer)
        for position, layer in enumerate(layers)
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D)
    ]
    if len(conv_layers) != len(convolutions):
        raise FeaturizerError(
            f"the bundled model has {len(convolutions)} feature convolutions, Keras' MobileNetV2 "
            f"{len(conv_layers)}: they do not map one to one"
        )
    for (position, layer), weights in zip(conv_layers, convolutions, strict=True):
        if isinstance(layer, keras.layers.DepthwiseConv2D) != weights.depthwise:
            raise FeaturizerError(f"layer {layer.name} and the bundled model's convolution differ in kind")
        layer.set_weights([weights.kernel.transpose(1, 2, 3, 0)])
        batch_norm = next(
            later for later in layers[position + 1 :] if isinstance(later, keras.layers.BatchNormalization)
        )
        channels = weights.bias.shape[0]
        batch_norm.set_weights(
            [
                np.ones(channels, np.float32),
                weights.bias,
                np.zeros(channels, np.float32),
                np.full(channels, 1.0 - batch_norm.epsilon, np.float32),
            ]
        )
    return model


def _seeded_model(input_size: int, calibration_images: list[Path]):
    """MobileNetV2 from a fixed seed, its batch-norm statistics calibrated on real images.

    Untouched, a random MobileNetV2's batch norms (mean 0, variance 1) make every
    image's features nearly identical; one forward pass in training mode with
    momentum 0 sets each layer's moving statistics to its activations' statistics
    on the calibration batch, which gives informative (random-projection) features.
    """
    import keras

    log.warning(
        "seeded featurizer: weights are a fixed random initialisation with calibrated "
        "batch-norm statistics, NOT ImageNet features; for comparison only"
    )
    calibration = _calibration_batch(calibration_images, input_size)
    keras.utils.set_random_seed(SEED)
    model = _mobilenet_v2(input_size, "seeded", None)
    batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved_momentum = [layer.momentum for layer in batch_norms]
    for layer in batch_norms:
        layer.momentum = 0.0
    model(scale_for_mobilenet(calibration), training=True)
    for layer, momentum in zip(batch_norms, saved_momentum, strict=True):
        layer.momentum = momentum
    return model


def _calibration_batch(paths: list[Path], input_size: int) -> np.ndarray:
    if len(paths) < 2:
        raise FeaturizerError(
            f"a seeded export calibrates batch norms on real images: need >= 2, found {len(paths)} "
            f"(expected under {BUNDLED_IMAGES}, or pass --calibration-images DIR)"
        )
    ordered = sorted(paths)
    stride = max(1, len(ordered) // CALIBRATION_BATCH)
    chosen = ordered[::stride][:CALIBRATION_BATCH]
    return np.stack([decode_and_resize(Path(path).read_bytes(), input_size) for path in chosen])
