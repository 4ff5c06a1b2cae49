"""Flash-lean forms of an int8 flatbuffer: names in a sidecar, and the TFLM-only form.

The converter's flatbuffer holds, besides the constants, a name per tensor and,
for every per-channel tensor, a float32 scale and an int64 zero point per
channel (all zero for int8 weights). `strip_names` moves the names out (the
TFLite interpreter and TFLM read the result); `micro_flatbuffer` also keeps one
zero point per all-zero per-channel array (TFLM broadcasts element 0), drops
the quantization of CONV_2D / DEPTHWISE_CONV_2D biases (TFLM derives their
scale from the input and filter scales) and points every tensor without data
at the one empty buffer 0. TFLM's outputs and arena are
unchanged; the TFLite interpreter refuses the TFLM-only form, so it is validated
in TFLM against the TFLite run of the stripped form.

Example:

    stripped, names = strip_names(flatbuffer)      # names: {tensor index: name}
    micro = micro_flatbuffer(flatbuffer)            # what model_data.cc holds
    flash_breakdown(micro)["flash_per_constant_byte"]
"""

import numpy as np

_BIAS_QUANTIZATION_UNUSED = ("CONV_2D", "DEPTHWISE_CONV_2D")  # TFLM ignores their bias's quantization


def read_model(flatbuffer):
    """The flatbuffer as TFLite schema objects (`ModelT`), to edit."""
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))


def operator_count(flatbuffer):
    """The operators of the flatbuffer's main subgraph (what one Invoke runs)."""
    from tensorflow.lite.python import schema_py_generated as schema

    return schema.Model.GetRootAs(bytes(flatbuffer), 0).Subgraphs(0).OperatorsLength()


def write_model(model, share=False):
    """A `ModelT` back to flatbuffer bytes; with `share`, equal numeric vectors (shapes, constant
    data) and equal quantization tables are written once and referenced wherever they occur (the
    flatbuffer format allows it; readers see the same values)."""
    from tensorflow.lite.tools import flatbuffer_utils

    if not share:
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            if tensor.quantization is not None and tensor.quantization.details is None:
                tensor.quantization = _SharedTable(tensor.quantization)
    builder = _sharing_builder()
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class _SharedTable:
    """A schema object packed once per distinct content by a `_sharing_builder`."""

    def __init__(self, table):
        self.table = table
        self.key = tuple(
            (name, value.dtype.str, value.tobytes()) if isinstance(value, np.ndarray) else (name, value)
            for name, value in sorted(vars(table).items())
        )

    def Pack(self, builder):  # noqa: N802 (the schema objects' method name)
        if self.key not in builder.tables:
            builder.tables[self.key] = self.table.Pack(builder)
        return builder.tables[self.key]


def _sharing_builder():
    """A flatbuffers builder that writes each distinct numpy vector once (`write_model(share=True)`)."""
    import flatbuffers

    class SharingBuilder(flatbuffers.Builder):
        def __init__(self):
            super().__init__(1024)
            self.vectors, self.tables = {}, {}

        def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' method name)
            key = (x.dtype.str, x.tobytes())
            if key not in self.vectors:
                self.vectors[key] = super().CreateNumpyVector(x)
            return self.vectors[key]

    return SharingBuilder()


def strip_names(flatbuffer):
    """(flatbuffer without tensor names and other strings, {tensor index: name} of subgraph 0)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = read_model(flatbuffer)
    names = {i: (t.name or b"").decode() for i, t in enumerate(model.subgraphs[0].tensors)}
    flatbuffer_utils.strip_strings(model)
    return write_model(model), names


def micro_flatbuffer(flatbuffer):
    """The flatbuffer without names and with what else TFLM does not read removed (see the
    module docstring): what a firmware holds."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = read_model(flatbuffer)
    flatbuffer_utils.strip_strings(model)
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            op_name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
            if op_name in _BIAS_QUANTIZATION_UNUSED and len(op.inputs) > 2 and op.inputs[2] >= 0:
                subgraph.tensors[op.inputs[2]].quantization = None
        for tensor in subgraph.tensors:
            quantization = tensor.quantization
            zero_points = None if quantization is None else quantization.zeroPoint
            if zero_points is not None and len(zero_points) > 1 and not np.any(zero_points):
                quantization.zeroPoint = np.zeros(1, dtype=np.int64)
    _share_empty_buffer(model)
    return write_model(model, share=True)


def _share_empty_buffer(model):
    """Every tensor without constant data refers to buffer 0 (empty by the schema's convention);
    the converter gives each its own empty buffer."""
    if model.buffers[0].data is not None and len(model.buffers[0].data):
        return  # not the convention: leave the buffers as they are
    kept, new_index = [], {}
    for index, buffer in enumerate(model.buffers):
        if index == 0 or (buffer.data is not None and len(buffer.data)):
            new_index[index] = len(kept)
            kept.append(buffer)
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.buffer = new_index.get(tensor.buffer, 0)
    for metadata in model.metadata or []:
        metadata.buffer = new_index.get(metadata.buffer, 0)
    model.buffers = kept


def flash_breakdown(flatbuffer):
    """Bytes of the flatbuffer, of its constant buffers (int8 and int32 data), of tensor names,
    of quantization scales and zero points, and flash per constant byte."""
    model = read_model(flatbuffer)
    constants = sum(len(b.data) for b in model.buffers if b.data is not None)
    tensors = [t for subgraph in model.subgraphs for t in subgraph.tensors]
    quantized = [t.quantization for t in tensors if t.quantization is not None and t.quantization.scale is not None]
    return {
        "flash_bytes": len(flatbuffer),
        "constant_bytes": int(constants),
        "name_bytes": sum(len(t.name or b"") for t in tensors),
        "scale_bytes": 4 * sum(len(q.scale) for q in quantized),
        "zero_point_bytes": 8 * sum(len(q.zeroPoint) for q in quantized if q.zeroPoint is not None),
        "flash_per_constant_byte": round(len(flatbuffer) / max(constants, 1), 4),
    }
