"""Surgery on the bundled int8 MobileNetV2 `.tflite` flatbuffer (pure: flatbuffers + NumPy).

Two things are read or rewritten here, without running any model:

- `cut_at_pooled_features`: the shipped file ends with the ImageNet classifier
  (logits conv, a RESHAPE with a fixed batch of 1, SOFTMAX). The product wants
  the 1280 pooled features, and the fixed RESHAPE is what makes batches above 1
  fail under XNNPACK. Cutting the graph after the global-average MEAN gives a
  model whose output is the pooled vector and whose batch is free; the
  classifier's weights are dropped (the file shrinks by 1.3 MB).
- `feature_convolutions`: the 52 feature convolutions' (35 plain, 17 depthwise)
  dequantized kernels and biases, in graph order, from which the float Keras model is rebuilt.

The schema module is the one `ai-edge-litert` ships, so this needs no TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

FILE_IDENTIFIER = b"TFL3"
# The metadata entry a cut model carries: what it is, for `model_version` and for refusing foreign files.
FEATURIZER_METADATA = b"fruits_featurizer"
# TFLite's own metadata describes the removed classifier output: dropped with it.
STALE_METADATA = (b"TFLITE_METADATA",)
_OPERATOR_NAMES = {
    code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}


class GraphError(ValueError):
    """The flatbuffer is not the MobileNetV2 layout this module knows; the message says what differs."""


@dataclass(frozen=True)
class ConvWeights:
    """One convolution's float weights in TFLite layout: conv [out, kh, kw, in], depthwise [1, kh, kw, ch]."""

    depthwise: bool
    kernel: np.ndarray
    bias: np.ndarray


def cut_at_pooled_features(model_bytes: bytes, input_size: int, description: dict) -> bytes:
    """A copy of the model ending at the pooled features, input [batch, S, S, 3], tagged `description`."""
    model = _unpack(model_bytes)
    graph = model.subgraphs[0]
    operator_names = [_operator_name(model, operator) for operator in graph.operators]
    if "MEAN" not in operator_names:
        raise GraphError("no global-average MEAN in the graph: not a pooled-feature model")
    last = max(index for index, name in enumerate(operator_names) if name == "MEAN")
    kept, removed = graph.operators[: last + 1], graph.operators[last + 1 :]
    still_used = {tensor for operator in kept for tensor in (*operator.inputs, *operator.outputs)}
    still_used.update(int(tensor) for tensor in graph.inputs)
    for operator in removed:
        for tensor in (*operator.inputs, *operator.outputs):
            if tensor >= 0 and tensor not in still_used:
                model.buffers[graph.tensors[tensor].buffer].data = None
    graph.operators = kept
    graph.outputs = np.array([kept[-1].outputs[0]], dtype=np.int32)
    image = graph.tensors[int(graph.inputs[0])]
    image.shape = np.array([1, input_size, input_size, 3], dtype=np.int32)
    image.shapeSignature = np.array([-1, input_size, input_size, 3], dtype=np.int32)
    model.metadata = [
        entry
        for entry in (model.metadata or [])
        if entry.name not in STALE_METADATA and entry.name != FEATURIZER_METADATA
    ]
    tag = schema.BufferT()
    tag.data = np.frombuffer(json.dumps(description, sort_keys=True).encode(), dtype=np.uint8)
    model.buffers.append(tag)
    entry = schema.MetadataT()
    entry.name, entry.buffer = FEATURIZER_METADATA, len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes))
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def featurizer_description(model_bytes: bytes) -> dict | None:
    """The description a cut model was tagged with, or None for any other flatbuffer."""
    model = _unpack(model_bytes)
    for entry in model.metadata or []:
        if entry.name == FEATURIZER_METADATA:
            return json.loads(bytes(model.buffers[entry.buffer].data).decode())
    return None


def feature_convolutions(model_bytes: bytes) -> list[ConvWeights]:
    """The dequantized weights of every convolution before the global pool, in graph order."""
    model = _unpack(model_bytes)
    graph = model.subgraphs[0]
    convolutions = []
    for operator in graph.operators:
        name = _operator_name(model, operator)
        if name == "MEAN":
            break
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        _, kernel_index, bias_index = (int(index) for index in operator.inputs[:3])
        convolutions.append(
            ConvWeights(
                depthwise=name == "DEPTHWISE_CONV_2D",
                kernel=_dequantized(model, graph.tensors[kernel_index]),
                bias=_dequantized(model, graph.tensors[bias_index]),
            )
        )
    return convolutions


def _unpack(model_bytes: bytes):
    if len(model_bytes) < 8 or model_bytes[4:8] != FILE_IDENTIFIER:
        raise GraphError("not a TFLite flatbuffer (no TFL3 identifier)")
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    if len(model.subgraphs or []) != 1:
        raise GraphError(f"expected one subgraph, found {len(model.subgraphs or [])}")
    return model


def _operator_name(model, operator) -> str:
    code = model.operatorCodes[operator.opcodeIndex]
    return _OPERATOR_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")


def _dequantized(model, tensor) -> np.ndarray:
    """Float32 values of a constant int8/int32 tensor: scale x (q - zero point), per channel."""
    dtypes = {schema.TensorType.INT8: np.int8, schema.TensorType.INT32: np.int32}
    if tensor.type not in dtypes:
        raise GraphError(f"tensor {tensor.name!r} is not int8/int32 (type {tensor.type})")
    raw = model.buffers[tensor.buffer].data
    if raw is None:
        raise GraphError(f"tensor {tensor.name!r} has no constant data")
    values = np.frombuffer(bytes(raw), dtype=dtypes[tensor.type]).reshape(tuple(tensor.shape))
    quantization = tensor.quantization
    scale = np.asarray(quantization.scale, dtype=np.float64)
    zero_point = np.asarray(quantization.zeroPoint, dtype=np.float64)
    if scale.size > 1:
        shape = [1] * values.ndim
        shape[quantization.quantizedDimension] = scale.size
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return ((values.astype(np.float64) - zero_point) * scale).astype(np.float32)
