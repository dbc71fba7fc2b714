"""The two featurizer runtimes behind one interface: uint8 images in, float32 features out.

- `KerasFeaturizer`: a float Keras model behind one traced `tf.function`.
- `LiteRtFeaturizer`: the int8 `.tflite` model in LiteRT's interpreter (XNNPACK).

Both expose `model_version`, `input_size`, `feature_dim`, `batch_size` (images
per call of `features` that the caller should aim for) and `features(images)`.
`model.build_featurizer` makes the right one from a broadcast spec; workers call it
once per process (see `worker_cache`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

from streaming_job.featurizer.preprocess import MOBILENET_OFFSET, MOBILENET_SCALE

DEFAULT_BATCH_SIZE = 64
# Images per interpreter call. Measured on 2 cores: 1, 4, 8 and 16 run at the same
# images/s with one thread (XNNPACK's int8 kernels gain nothing from a batch), and a
# fixed batch of 1 never needs a re-allocation for a short last chunk.
LITERT_INVOKE_BATCH = 1


class Featurizer(Protocol):
    """What featurization needs of a runtime."""

    runtime: str
    model_version: str
    input_size: int
    feature_dim: int
    batch_size: int

    def features(self, images_uint8: np.ndarray) -> np.ndarray: ...


def _check_images(images_uint8: np.ndarray, input_size: int) -> None:
    expected = (input_size, input_size, 3)
    if images_uint8.ndim != 4 or images_uint8.shape[1:] != expected:
        raise ValueError(f"expected images [N, {input_size}, {input_size}, 3], got {images_uint8.shape}")


class KerasFeaturizer:
    """A Keras featurizer behind one traced `tf.function` (uint8 in, float32 features out).

    The function's input signature fixes everything but the batch dimension, so
    it is traced once per process whatever the batch sizes; pixel scaling to
    [-1, 1] runs inside the graph.
    """

    runtime = "keras"

    def __init__(self, model, model_version: str, batch_size: int = DEFAULT_BATCH_SIZE):
        import tensorflow as tf

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_version = model_version
        self.batch_size = batch_size
        self.input_size = int(model.input_shape[1])
        self.feature_dim = int(model.output_shape[-1])
        self.traces = 0
        self._model = model
        signature = [tf.TensorSpec([None, self.input_size, self.input_size, 3], tf.uint8)]

        @tf.function(input_signature=signature, jit_compile=False)
        def forward(images):
            self.traces += 1  # Python side effect: runs only while tracing
            scaled = tf.cast(images, tf.float32) / MOBILENET_SCALE - MOBILENET_OFFSET
            return model(scaled, training=False)

        self._forward = forward

    def features(self, images_uint8: np.ndarray) -> np.ndarray:
        """[N, S, S, 3] uint8 -> [N, D] float32, in forward passes of at most `batch_size` images."""
        _check_images(images_uint8, self.input_size)
        if len(images_uint8) == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        chunks = [
            self._forward(images_uint8[start : start + self.batch_size]).numpy()
            for start in range(0, len(images_uint8), self.batch_size)
        ]
        return np.concatenate(chunks).astype(np.float32, copy=False)


class _InterpreterLane:
    """One single-threaded LiteRT interpreter (interpreters are not thread-safe: one lane per thread)."""

    def __init__(self, model_bytes: bytes, input_size: int, invoke_batch: int):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=model_bytes, num_threads=1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._shape = (input_size, input_size, 3)
        self._invoke_batch = invoke_batch
        self._allocated = 0
        self._allocate(invoke_batch)
        self.output = self._interpreter.get_output_details()[0]

    def _allocate(self, batch: int) -> None:
        if batch != self._allocated:
            self._interpreter.resize_tensor_input(self._input, [batch, *self._shape])
            self._interpreter.allocate_tensors()
            self._allocated = batch

    def run(self, images_uint8: np.ndarray, out: np.ndarray) -> None:
        """Write the quantized features of `images_uint8` into `out` ([N, D] float32), invoke by invoke."""
        for start in range(0, len(images_uint8), self._invoke_batch):
            chunk = np.ascontiguousarray(images_uint8[start : start + self._invoke_batch])
            self._allocate(len(chunk))
            self._interpreter.set_tensor(self._input, chunk)
            self._interpreter.invoke()
            out[start : start + len(chunk)] = self._interpreter.get_tensor(self.output["index"]).reshape(
                len(chunk), -1
            )


class LiteRtFeaturizer:
    """The int8 pooled-feature model in LiteRT's interpreter, one single-threaded interpreter per thread.

    The model takes the RGB pixels as they are (its input quantization is
    MobileNetV2's x / 127.5 - 1); its int8 output is dequantized to float32.
    With `threads` > 1 the images are split across that many interpreters run
    in parallel (`invoke` releases the GIL): for one small image at a time this
    measured ~2.5x faster on 2 cores than one interpreter with 2 XNNPACK threads,
    whose intra-op parallelism has little to split.
    """

    runtime = "litert"

    def __init__(
        self,
        model_bytes: bytes,
        model_version: str,
        input_size: int,
        threads: int = 1,
        batch_size: int = DEFAULT_BATCH_SIZE,
        invoke_batch: int = LITERT_INVOKE_BATCH,
    ):
        if min(threads, batch_size, invoke_batch) < 1:
            raise ValueError(
                f"threads, batch_size, invoke_batch must be >= 1, got {threads, batch_size, invoke_batch}"
            )
        self.model_version = model_version
        self.input_size = input_size
        self.batch_size = batch_size
        self.threads = threads
        model_bytes = bytes(model_bytes)
        self._lanes = [_InterpreterLane(model_bytes, input_size, invoke_batch) for _ in range(threads)]
        output = self._lanes[0].output
        self.feature_dim = int(np.prod(output["shape"][1:]))
        self._scale, self._zero_point = output["quantization"]
        self._pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="litert") if threads > 1 else None
        )

    def features(self, images_uint8: np.ndarray) -> np.ndarray:
        """[N, S, S, 3] uint8 -> [N, D] float32, the images split evenly across the interpreters."""
        _check_images(images_uint8, self.input_size)
        out = np.empty((len(images_uint8), self.feature_dim), dtype=np.float32)
        if self._pool is None or len(images_uint8) < 2:
            self._lanes[0].run(images_uint8, out)
        else:
            bounds = np.linspace(0, len(images_uint8), len(self._lanes) + 1).astype(int)
            running = [
                self._pool.submit(lane.run, images_uint8[start:stop], out[start:stop])
                for lane, start, stop in zip(self._lanes, bounds[:-1], bounds[1:], strict=True)
                if stop > start
            ]
            for future in running:
                future.result()
        if self._scale:
            out -= self._zero_point
            out *= self._scale
        return out
