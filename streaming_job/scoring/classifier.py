"""The fruit classifier as the stream runs it: dense layers over the k PCA scores, applied with NumPy.

`fruits classifier train` (fruits_classifier.training) fits it with Keras and
exports its weights here, the input standardisation folded into the first
layer, so the workers score without TensorFlow. Lake layout:

    <lake>/models/classifier/<classifier_version>/classifier.npz   weights, labels, versions
    <lake>/models/classifier/latest.json                            the published one: version, sha256, size

`classifier_version` = "clf-<features snapshot id>-<pca_version>-<12 hex of the weights>". A
published file is checked against latest.json (size, SHA-256) and against the
stream's PCA version before it replaces the running one (ClassifierError otherwise).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass

import numpy as np

from fruits_core import contracts
from fruits_core.lake_uris import join_uri
from streaming_job import uris

CLASSIFIER_DIR = f"{contracts.MODELS_PREFIX}classifier/"
ARTIFACT_NAME = "classifier.npz"
LATEST_NAME = "latest.json"
# Below this probability a prediction counts as low-confidence (the per-batch metric and its alarm).
LOW_CONFIDENCE = 0.6


class ClassifierError(RuntimeError):
    """A classifier cannot be trained, published or loaded; the message is one line saying why."""


@dataclass(frozen=True)
class Classifier:
    """Dense layers (ReLU between, softmax last) mapping k PCA scores to class probabilities."""

    version: str
    pca_version: str
    labels: tuple[str, ...]
    weights: tuple[np.ndarray, ...]  # [k, h1], [h1, h2], ..., [h_last, classes]
    biases: tuple[np.ndarray, ...]

    def __post_init__(self):
        if len(self.weights) != len(self.biases) or not self.weights:
            raise ClassifierError("a classifier needs one bias per weight matrix")
        if self.weights[-1].shape[1] != len(self.labels):
            raise ClassifierError(
                f"the last layer has {self.weights[-1].shape[1]} outputs for {len(self.labels)} labels"
            )

    @property
    def k(self) -> int:
        return int(self.weights[0].shape[0])

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """[N, k] PCA scores -> [N, classes] float32 probabilities."""
        if scores.ndim != 2 or scores.shape[1] != self.k:
            raise ValueError(f"expected scores [N, {self.k}], got {scores.shape}")
        activations = scores.astype(np.float32)
        for position, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            activations = activations @ weight + bias
            if position < len(self.weights) - 1:
                np.maximum(activations, 0.0, out=activations)
        activations -= activations.max(axis=1, keepdims=True)
        np.exp(activations, out=activations)
        return activations / activations.sum(axis=1, keepdims=True)

    def predict(self, scores: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(label, probability of that label) for each row of scores."""
        probabilities = self.probabilities(scores)
        best = probabilities.argmax(axis=1)
        return [self.labels[index] for index in best], probabilities[np.arange(len(best)), best]


def predict_rows(classifier: Classifier | None, features: list) -> tuple[list, list, list]:
    """(label, confidence, classifier_version) per row of a worker batch (None: no classifier or vector)."""
    none = [None] * len(features)
    scored = [position for position, vector in enumerate(features) if vector is not None]
    if classifier is None or not scored:
        return none, list(none), list(none)
    labels, confidences = classifier.predict(np.stack([features[position] for position in scored]))
    out_labels, out_confidences, out_versions = list(none), list(none), list(none)
    for position, label, confidence in zip(scored, labels, confidences.tolist(), strict=True):
        out_labels[position], out_confidences[position] = label, confidence
        out_versions[position] = classifier.version
    return out_labels, out_confidences, out_versions


def artifact_uri(lake_uri: str, version: str) -> str:
    return join_uri(lake_uri, CLASSIFIER_DIR, version, ARTIFACT_NAME)


def latest_uri(lake_uri: str) -> str:
    return join_uri(lake_uri, CLASSIFIER_DIR, LATEST_NAME)


def to_bytes(classifier: Classifier) -> bytes:
    """The artifact: an uncompressed .npz of the layers plus a JSON header (versions, labels)."""
    header = {
        "version": classifier.version,
        "pca_version": classifier.pca_version,
        "labels": classifier.labels,
    }
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for position, (weight, bias) in enumerate(zip(classifier.weights, classifier.biases, strict=True)):
        arrays[f"w{position}"] = weight.astype(np.float32)
        arrays[f"b{position}"] = bias.astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def from_bytes(data: bytes, where: str) -> Classifier:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            header = json.loads(archive["header"].tobytes())
            layers = len([name for name in archive.files if name.startswith("w")])
            weights = tuple(archive[f"w{position}"] for position in range(layers))
            biases = tuple(archive[f"b{position}"] for position in range(layers))
    except Exception as error:
        raise ClassifierError(
            f"{where} is not a classifier artifact ({type(error).__name__}: {error})"
        ) from error
    return Classifier(header["version"], header["pca_version"], tuple(header["labels"]), weights, biases)


def weights_digest(classifier_weights: tuple[np.ndarray, ...], biases: tuple[np.ndarray, ...]) -> str:
    digest = hashlib.sha256()
    for array in (*classifier_weights, *biases):
        digest.update(f"{array.shape}".encode())
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()[:12]


def read_pointer(lake_uri: str) -> dict | None:
    """latest.json of the lake's classifier (None: none published yet)."""
    try:
        data = uris.read_bytes(latest_uri(lake_uri))
    except FileNotFoundError:
        return None
    try:
        pointer = json.loads(data)
        str(pointer["version"]), int(pointer["size"]), str(pointer["sha256"])
    except (ValueError, KeyError, TypeError) as error:
        raise ClassifierError(f"{latest_uri(lake_uri)} is not a classifier pointer ({error})") from error
    return pointer


def load_published(lake_uri: str, pointer: dict, pca_version: str) -> Classifier:
    """The classifier a pointer names, checked whole (size, SHA-256) and made for `pca_version`."""
    where = artifact_uri(lake_uri, pointer["version"])
    try:
        data = uris.read_bytes(where)
    except FileNotFoundError as error:
        raise ClassifierError(f"{where} is missing (latest.json names it)") from error
    if len(data) != int(pointer["size"]) or hashlib.sha256(data).hexdigest() != pointer["sha256"]:
        raise ClassifierError(
            f"{where} is truncated or altered: {len(data)} bytes, latest.json says {pointer['size']} "
            "with another SHA-256"
        )
    classifier = from_bytes(data, where)
    if classifier.pca_version != pca_version:
        raise ClassifierError(
            f"classifier {classifier.version} was trained on {classifier.pca_version}, the stream "
            f"projects with {pca_version}: retrain it with `fruits classifier train`"
        )
    return classifier
