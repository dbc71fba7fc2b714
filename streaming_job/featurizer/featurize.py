"""Batched featurization: image URIs -> feature vectors (or PCA scores), or an error per image.

`featurize_uris` is what a worker runs on each Arrow batch: it reads and decodes
the next chunk of images in a background thread while the runtime (LiteRT or
TensorFlow) featurizes the current one, and turns every unreadable or undecodable
image into an error entry instead of failing the batch.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from fruits_core.contracts import FeaturizeErrorReason
from streaming_job.featurizer.image_io import ImageReader, ImageReadTimeoutError, ImageTooLargeError
from streaming_job.featurizer.preprocess import ImageDecodeError
from streaming_job.featurizer.projection import PcaProjection
from streaming_job.featurizer.runtimes import Featurizer

MAX_ERROR_DETAIL = 300


@dataclass
class BatchResult:
    """One entry per input URI, in input order: either features (+ residual) or an error.

    `features[i]` is a float32 NumPy vector (k PCA scores, or the D raw features
    when no projection is given); Arrow serialises it as array<float>.
    `errors[i]` is (reason code from contracts.FeaturizeErrorReason, detail).
    """

    features: list[np.ndarray | None] = field(default_factory=list)
    residuals: list[float | None] = field(default_factory=list)
    errors: list[tuple[str, str] | None] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(error is not None for error in self.errors)

    @property
    def reasons(self) -> list[str | None]:
        return [error[0] if error else None for error in self.errors]

    @property
    def details(self) -> list[str | None]:
        return [error[1] if error else None for error in self.errors]


def featurize_uris(
    image_uris: list[str], featurizer: Featurizer, projection: PcaProjection | None, reader: ImageReader
) -> BatchResult:
    """Featurize images by URI; reading/decoding chunk i+1 overlaps the forward pass of chunk i."""
    if projection is not None and projection.model_version != featurizer.model_version:
        raise ValueError(
            f"PCA fitted on {projection.model_version}, featurizer is {featurizer.model_version}"
        )
    result = BatchResult(
        features=[None] * len(image_uris), residuals=[None] * len(image_uris), errors=[None] * len(image_uris)
    )
    starts = list(range(0, len(image_uris), featurizer.batch_size))
    if not starts:
        return result
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-prefetch") as prefetch:

        def load(start: int):
            return reader.load_many(image_uris[start : start + featurizer.batch_size], featurizer.input_size)

        pending = prefetch.submit(load, starts[0])
        for position, start in enumerate(starts):
            loaded = pending.result()
            if position + 1 < len(starts):
                pending = prefetch.submit(load, starts[position + 1])
            _featurize_chunk(start, loaded, featurizer, projection, result)
    return result


def _featurize_chunk(
    start: int,
    loaded: list[np.ndarray | Exception],
    featurizer: Featurizer,
    projection: PcaProjection | None,
    result: BatchResult,
) -> None:
    good = [offset for offset, item in enumerate(loaded) if isinstance(item, np.ndarray)]
    for offset, item in enumerate(loaded):
        if not isinstance(item, np.ndarray):
            result.errors[start + offset] = classify_error(item)
    if not good:
        return
    features = featurizer.features(np.stack([loaded[offset] for offset in good]))
    residuals: list[float | None] = [None] * len(good)
    if projection is not None:
        features, residual_array = projection.project(features)
        residuals = residual_array.tolist()
    for row, offset in enumerate(good):
        result.features[start + offset] = features[row]
        result.residuals[start + offset] = residuals[row]


def classify_error(error: Exception) -> tuple[str, str]:
    """(reason code, short detail) for a failed read or decode."""
    if isinstance(error, ImageDecodeError):
        reason = FeaturizeErrorReason.IMAGE_DECODE_FAILED
    elif isinstance(error, ImageTooLargeError):
        reason = FeaturizeErrorReason.IMAGE_TOO_LARGE
    elif isinstance(error, ImageReadTimeoutError):
        reason = FeaturizeErrorReason.IMAGE_READ_TIMEOUT
    elif isinstance(error, FileNotFoundError):
        reason = FeaturizeErrorReason.IMAGE_NOT_FOUND
    else:
        reason = FeaturizeErrorReason.IMAGE_READ_FAILED
    detail = f"{type(error).__name__}: {error}"
    return reason.value, detail[:MAX_ERROR_DETAIL]
