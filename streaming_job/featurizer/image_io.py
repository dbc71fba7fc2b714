"""Fetching image bytes by URI inside a worker: parallel GETs on one reused S3 client.

One `ImageReader` lives per Python worker process (see worker_cache), so its
S3 client, connection pool and threads are built once, not per batch.
Failures come back as values, one per URI: a bad image never fails a batch,
and a read that hangs (a stuck mount, an S3 connection that stops sending)
is abandoned after the read timeout instead of holding the batch forever.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from streaming_job import uris
from streaming_job.config import StreamConfig
from streaming_job.featurizer.preprocess import decode_and_resize

# Concurrent reads per core of the task. A read is mostly waiting on an S3 GET (tens of ms), a decode
# is CPU (Pillow releases the GIL): 8 GETs in flight per core feed the ~200 images/s a LiteRT core
# featurizes at 30-40 ms per GET, without the 16 threads per worker that oversubscribed the cores.
DEFAULT_READ_THREADS_PER_CORE = 8
# Overrides it in the workers (on EMR: spark.executorEnv.FRUITS_READ_THREADS_PER_CORE).
READ_THREADS_PER_CORE_ENV = "FRUITS_READ_THREADS_PER_CORE"
DEFAULT_READ_TIMEOUT_SECONDS = StreamConfig.image_read_timeout_seconds
# A clean image is a JPEG of at most 2048 px a side (a few MiB): anything larger is not read whole.
MAX_IMAGE_BYTES = 32 * 1024 * 1024


def read_threads(task_cores: int, threads_per_core: int = DEFAULT_READ_THREADS_PER_CORE) -> int:
    """Threads of a task's image reader: its cores times the I/O factor (reads wait, decodes compute)."""
    if task_cores < 1 or threads_per_core < 1:
        raise ValueError(
            f"task_cores and threads_per_core must be >= 1, got {task_cores}, {threads_per_core}"
        )
    return task_cores * threads_per_core


def threads_per_core_from_env(environ: dict[str, str] | None = None) -> int:
    """The I/O factor: $FRUITS_READ_THREADS_PER_CORE, else the default; a bad value fails loudly."""
    raw = (os.environ if environ is None else environ).get(READ_THREADS_PER_CORE_ENV)
    if raw is None:
        return DEFAULT_READ_THREADS_PER_CORE
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{READ_THREADS_PER_CORE_ENV} must be an integer >= 1, got {raw!r}")
    return value


class ImageTooLargeError(Exception):
    """The object holds more than the reader's size cap (reason image_too_large)."""


class ImageReadTimeoutError(Exception):
    """The object's bytes did not arrive within the reader's timeout (reason image_read_timeout)."""


T = TypeVar("T")


class ImageReader:
    """Reads many images concurrently; `s3://` through one client, `file://` from disk."""

    def __init__(
        self,
        threads: int = DEFAULT_READ_THREADS_PER_CORE,
        max_bytes: int = MAX_IMAGE_BYTES,
        timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS,
    ):
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds}")
        self.threads = threads
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="image-read")
        self._client = None
        self._client_lock = threading.Lock()

    def read_many(self, image_uris: list[str]) -> list[bytes | Exception]:
        """The bytes of each URI, or the exception that reading it raised, in input order."""
        return self._map(self.read, image_uris)

    def load_many(self, image_uris: list[str], input_size: int) -> list[np.ndarray | Exception]:
        """Read and decode each URI to uint8 [S, S, 3] in the pool (Pillow releases the GIL)."""
        return self._map(lambda uri: decode_and_resize(self.read(uri), input_size), image_uris)

    def read(self, uri: str) -> bytes:
        """The object's bytes, or ImageReadTimeoutError when they take longer than `timeout_seconds`.

        The blocking read runs in its own daemon thread: a read that never returns
        (no timeout can interrupt a stuck open() or socket) is left behind, and the
        pool's thread is free again after the timeout.
        """
        outcome: list = []

        def fetch() -> None:
            try:
                outcome.append(self._read_capped(uri))
            except Exception as error:
                outcome.append(error)

        reading = threading.Thread(target=fetch, name="image-read-io", daemon=True)
        reading.start()
        reading.join(self.timeout_seconds)
        if not outcome:
            raise ImageReadTimeoutError(f"no bytes within {self.timeout_seconds:g} s")
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        return outcome[0]

    def _read_capped(self, uri: str) -> bytes:
        """The object's bytes; at most `max_bytes` are read (one byte more proves it too large)."""
        if uris.is_s3(uri):
            bucket, key = uris.split_s3(uri)
            try:
                body = self._s3().get_object(Bucket=bucket, Key=key)["Body"]
            except Exception as error:
                if uris.is_missing_object_error(error):
                    raise FileNotFoundError(f"no such object: {uri}") from error
                raise
            try:
                data = body.read(self.max_bytes + 1)
            finally:
                body.close()
        else:
            with uris.local_path(uri).open("rb") as file:
                data = file.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise ImageTooLargeError(f"more than {self.max_bytes} bytes")
        return data

    def _map(self, task: Callable[[str], T], image_uris: list[str]) -> list[T | Exception]:
        def guarded(uri: str) -> T | Exception:
            try:
                return task(uri)
            except Exception as error:
                return error

        return list(self._pool.map(guarded, image_uris))

    def _s3(self):
        with self._client_lock:
            if self._client is None:
                self._client = uris.s3_client(
                    max_pool_connections=self.threads, read_timeout_seconds=self.timeout_seconds
                )
            return self._client
