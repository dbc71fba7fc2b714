"""Driver side: which classifier a micro-batch scores with, read from the lake at each batch's start.

`ClassifierSwap.for_batch` runs first thing in every micro-batch (MicroBatchWriter):
it reads `models/classifier/latest.json` (one small GET) and, when the pointer
changed, loads, checks and broadcasts the new classifier. A classifier published
while the stream runs is therefore used from the first micro-batch that starts
after its latest.json is written, never in the middle of one. A pointer whose
classifier is truncated, altered, unreadable or for another PCA version is
logged in one line and the batch keeps the previous classifier (or none).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from streaming_job.scoring.classifier import Classifier, ClassifierError, load_published, read_pointer

log = logging.getLogger(__name__)


class ClassifierSwap:
    """The broadcast classifier of the current batch (None before one is published)."""

    def __init__(self, lake_uri: str, pca_version: str, broadcast: Callable[[Classifier], object]) -> None:
        self.lake_uri = lake_uri
        self.pca_version = pca_version
        self._broadcast = broadcast
        self._pointer: dict | None = None
        self.current: Classifier | None = None
        self.current_broadcast: object | None = None
        self.refused: list[str] = []

    def for_batch(self) -> object | None:
        """The broadcast to score this batch with, swapped first when a new classifier was published."""
        try:
            pointer = read_pointer(self.lake_uri)
        except ClassifierError as error:
            self._refuse(str(error))
            return self.current_broadcast
        if pointer is None or pointer == self._pointer:
            return self.current_broadcast
        # Remembered even when refused: a bad publication is reported once, not at every batch.
        self._pointer = pointer
        try:
            classifier = load_published(self.lake_uri, pointer, self.pca_version)
        except ClassifierError as error:
            self._refuse(str(error))
            return self.current_broadcast
        previous = self.current_broadcast
        self.current, self.current_broadcast = classifier, self._broadcast(classifier)
        if previous is not None and hasattr(previous, "unpersist"):
            previous.unpersist()
        log.info("classifier %s in use from this micro-batch on", classifier.version)
        return self.current_broadcast

    def _refuse(self, message: str) -> None:
        kept = self.current.version if self.current else "none"
        log.error("classifier not swapped (keeping %s): %s", kept, message)
        self.refused.append(message)
