"""The featurizer artifact: export it, load it on the driver, rebuild it in workers.

The artifact is a Keras `.keras` file whose output is the feature vector
(MobileNetV2, no top, global average pooling: 1280 values). The driver loads it
once into a `FeaturizerSpec` (architecture + weights, small and picklable) that
it broadcasts; workers rebuild the model from the spec without any file I/O.

`model_version` = "<model name>-<input size>-<12 hex>", the hex being a SHA-256
of the model's name, shapes and weight bytes. It is not the file's hash because
Keras stamps the save time into the file; the content hash is reproducible
(same seed -> same version) and survives re-packaging.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streaming_job import uris
from streaming_job.preprocess import decode_and_resize, scale_for_mobilenet

log = logging.getLogger(__name__)

WEIGHT_CHOICES = ("seeded", "imagenet")
# The only input sizes Keras publishes ImageNet MobileNetV2 weights for.
IMAGENET_INPUT_SIZES = (96, 128, 160, 192, 224)
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 32, 512
SEED = 20240917
# Images in the one batch-norm calibration pass of a seeded export (spread over the classes).
CALIBRATION_BATCH = 64
MODEL_SUFFIX = ".keras"
BUNDLED_IMAGES = Path(__file__).resolve().parents[1] / "data" / "fruits360-sample"


class FeaturizerError(RuntimeError):
    """The featurizer cannot be exported or loaded; the message says why and what to do."""


@dataclass(frozen=True)
class FeaturizerSpec:
    """What the driver broadcasts: enough to rebuild the model in a worker without file I/O."""

    model_version: str
    input_size: int
    feature_dim: int
    architecture_json: str
    weights: list[np.ndarray]


def export_featurizer(
    out_uri: str, input_size: int = 224, weights: str = "seeded", calibration_images: list[Path] | None = None
) -> str:
    """Write the featurizer artifact to `out_uri` (path, file:// or s3://); return its model_version."""
    if weights not in WEIGHT_CHOICES:
        raise FeaturizerError(f"weights must be one of {WEIGHT_CHOICES}, got {weights!r}")
    if not str(out_uri).endswith(MODEL_SUFFIX):
        raise FeaturizerError(f"the featurizer artifact must be a {MODEL_SUFFIX} file, got {out_uri!r}")
    if not MIN_INPUT_SIZE <= input_size <= MAX_INPUT_SIZE:
        raise FeaturizerError(f"input size must be in {MIN_INPUT_SIZE}..{MAX_INPUT_SIZE}, got {input_size}")
    model = (
        _imagenet_model(input_size)
        if weights == "imagenet"
        else _seeded_model(
            input_size, calibration_images if calibration_images is not None else bundled_calibration_images()
        )
    )
    version = model_version_of(model)
    with tempfile.TemporaryDirectory(prefix="featurizer-") as work_dir:
        local_file = Path(work_dir, f"featurizer{MODEL_SUFFIX}")
        with warnings.catch_warnings():
            # Keras' own saving code trips NumPy 2's __array__(copy=...) deprecation: not ours to fix.
            warnings.simplefilter("ignore", DeprecationWarning)
            model.save(local_file)
        uris.write_bytes(uris.to_uri(out_uri), local_file.read_bytes())
    log.info(
        "featurizer %s written (%d-d features, input %dx%d)",
        version,
        model.output_shape[-1],
        input_size,
        input_size,
    )
    return version


def load_featurizer_spec(uri: str) -> FeaturizerSpec:
    """Driver side: read the `.keras` artifact (file:// or s3://) into a broadcastable spec."""
    import keras

    try:
        data = uris.read_bytes(uris.to_uri(uri))
    except FileNotFoundError as error:
        raise FeaturizerError(
            f"no featurizer artifact at {uri}: create it with `fruits model export`"
        ) from error
    with tempfile.TemporaryDirectory(prefix="featurizer-") as work_dir:
        local_file = Path(work_dir, f"featurizer{MODEL_SUFFIX}")
        local_file.write_bytes(data)
        try:
            model = keras.saving.load_model(local_file, compile=False, safe_mode=True)
        except Exception as error:
            raise FeaturizerError(f"{uri} is not a loadable Keras model: {error}") from error
    input_size, feature_dim = _featurizer_shape(model, uri)
    return FeaturizerSpec(
        model_version=model_version_of(model),
        input_size=input_size,
        feature_dim=feature_dim,
        architecture_json=model.to_json(),
        weights=weight_arrays(model),
    )


def build_model(spec: FeaturizerSpec):
    """Worker side: the Keras model from the spec's architecture and weights (no file I/O)."""
    import keras

    model = keras.models.model_from_json(spec.architecture_json)
    model.set_weights(spec.weights)
    return model


def model_version_of(model) -> str:
    """The model's version: <name>-<input size>-<12 hex of a SHA-256 over name, shapes, weights>."""
    input_size, feature_dim = _featurizer_shape(model, model.name)
    digest = hashlib.sha256(f"{model.name}|{input_size}|{feature_dim}".encode())
    for array in weight_arrays(model):
        digest.update(f"|{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return f"{model.name}-{input_size}-{digest.hexdigest()[:12]}"


def weight_arrays(model) -> list[np.ndarray]:
    """The model's weights as C-contiguous NumPy arrays, in `set_weights` order."""
    return [np.ascontiguousarray(variable.numpy()) for variable in model.weights]


def bundled_calibration_images() -> list[Path]:
    """The real sample images shipped with the repository (data/fruits360-sample/<label>/*.jpg)."""
    return sorted(BUNDLED_IMAGES.glob("*/*.jpg"))


def _featurizer_shape(model, where: str) -> tuple[int, int]:
    input_shape, output_shape = tuple(model.input_shape), tuple(model.output_shape)
    if len(input_shape) != 4 or input_shape[1] != input_shape[2] or input_shape[3] != 3 or not input_shape[1]:
        raise FeaturizerError(f"{where}: expected a square RGB input [batch, S, S, 3], got {input_shape}")
    if len(output_shape) != 2 or not output_shape[1]:
        raise FeaturizerError(f"{where}: expected a feature-vector output [batch, D], got {output_shape}")
    return int(input_shape[1]), int(output_shape[1])


def _imagenet_model(input_size: int):
    import keras

    if input_size not in IMAGENET_INPUT_SIZES:
        raise FeaturizerError(f"ImageNet weights exist only for input sizes {IMAGENET_INPUT_SIZES}")
    try:
        return keras.applications.MobileNetV2(
            input_shape=(input_size, input_size, 3),
            include_top=False,
            weights="imagenet",
            pooling="avg",
            name="mobilenetv2-imagenet",
        )
    except Exception as error:
        raise FeaturizerError(
            f"could not obtain the ImageNet weights ({error}). They are downloaded by Keras and need "
            "internet access (or a pre-filled ~/.keras/models cache, see KERAS_HOME); offline, "
            "use --weights seeded"
        ) from error


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
        "batch-norm statistics, NOT ImageNet features; use --weights imagenet where "
        "the weights can be downloaded"
    )
    calibration = _calibration_batch(calibration_images, input_size)
    keras.utils.set_random_seed(SEED)
    model = keras.applications.MobileNetV2(
        input_shape=(input_size, input_size, 3),
        include_top=False,
        weights=None,
        pooling="avg",
        name="mobilenetv2-seeded",
    )
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
