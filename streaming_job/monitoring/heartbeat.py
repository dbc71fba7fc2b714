"""The driver's heartbeat: a daemon thread that reports on a timer, whether a batch runs or not.

Progress events exist only when a batch completes, so a hung batch or a dead
driver would look like a quiet stream. Every `--heartbeat` seconds this thread
calls the listener's `heartbeat` (latest.json refreshed, an EMF record with
`Heartbeat`, `BatchInFlightSeconds` and `BacklogManifests`): an alarm on the
heartbeat's absence catches a dead driver, one on the in-flight age a hung batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls `beat` at once, then every `interval_seconds` until `until` is set; a failing beat is logged."""

    def __init__(self, interval_seconds: float, beat: Callable[[], None], until: threading.Event) -> None:
        self.interval_seconds = interval_seconds
        self._beat = beat
        self._until = until
        self._thread = threading.Thread(target=self._run, name="fruits-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._until.is_set():
            try:
                self._beat()
            except Exception:
                log.exception("heartbeat: could not report")
            self._until.wait(self.interval_seconds)
