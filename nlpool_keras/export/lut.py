"""TFLM look-up-table (LUT) compression of an int8 flatbuffer's constant tensors.

TFLM can store a constant tensor as b-bit indices (b = 1..7) into per-channel
tables of its distinct values, and decode it at run time with a DECODE op. A
tensor gains only when its indices and tables together are smaller than the
int8 data: when each channel has few distinct values (clustered or heavily
pruned weights) and many weights per channel. `lut_compress` compresses
exactly those tensors, with TFLM's own compressor, and leaves the rest.

The decoded tensors live in the tensor arena, so LUT trades flash for SRAM:
measure the arena of the compressed model (`nlpool_keras.tflm.run_tflm`).

Example:

    compressed, rows = lut_compress(flatbuffer)
    len(flatbuffer), len(compressed)      # flash bytes before and after
    compressed_sizes(flatbuffer)          # {"flash_bytes", "gzip_bytes", "lut_bytes", "lut_tensors"}
"""

import contextlib
import gzip
import io
import warnings

MAX_INDEX_BITS = 7  # TFLM's DECODE takes 1..7-bit indices


def _channel_axis(tensor):
    quantization = tensor.quantization
    scales = quantization.scales if quantization is not None else None
    return quantization.axis if isinstance(scales, list) and len(scales) > 1 else None


def _candidates(subgraph):
    """(index, tensor, channel axis or None) of every int8 constant TFLM may decode at run time."""
    from tflite_micro.tensorflow.lite.micro.compression import constant_inputs
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    for index, tensor in enumerate(subgraph.tensors):
        constant = tensor.buffer is not None and bool(tensor.buffer.data)
        if constant and tensor.dtype == schema.TensorType.INT8 and not constant_inputs.find_uses(subgraph, tensor):
            yield index, tensor, _channel_axis(tensor)


def lut_compress(flatbuffer, max_index_bits=MAX_INDEX_BITS):
    """LUT-compresses every int8 constant tensor that gets smaller, with TFLM's compressor.

    Args:
        flatbuffer: bytes of an int8 .tflite model.
        max_index_bits: largest index width to use (1..7).

    Returns:
        (compressed flatbuffer bytes, or the input unchanged when no tensor gains;
         rows, one per int8 constant: name, channels, index bits (None when over
         `max_index_bits`), int8 bytes, LUT bytes (indices + tables) and whether it was compressed).
    """
    from tflite_micro import compression
    from tflite_micro.tensorflow.lite.micro.compression import lut, model_editor, spec

    if not 1 <= max_index_bits <= MAX_INDEX_BITS:
        raise ValueError(f"max_index_bits must be in 1..{MAX_INDEX_BITS}, received: max_index_bits={max_index_bits}")
    model = model_editor.read(bytes(flatbuffer))
    specs, rows = [], []
    for index, tensor, axis in _candidates(model.subgraphs[0]):
        bits = lut.compress_array(tensor.array, axis).index_bitwidth
        row = {"tensor": tensor.name, "channels": 1, "index_bits": None, "int8_bytes": len(tensor.buffer.data)}
        row.update(lut_bytes=None, compressed=False)
        if axis is not None:
            row["channels"] = int(tensor.shape[axis])
        if bits <= max_index_bits:
            method = spec.LookUpTableCompression(bits, spec.PerTensor() if axis is None else spec.PerChannel(axis))
            result = lut.LutCompressor().compress(tensor, method)
            row.update(index_bits=bits, lut_bytes=len(result.encoded_data) + len(result.ancillary_data))
            if row["lut_bytes"] < row["int8_bytes"]:
                row["compressed"] = True
                specs.append(spec.Tensor(subgraph=0, tensor=index, compression=[method]))
        rows.append(row)
    if not specs:
        return bytes(flatbuffer), rows
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return bytes(compression.compress(bytes(flatbuffer), specs)), rows


def compressed_sizes(flatbuffer, lut=None):
    """The flash a flatbuffer takes stored raw, gzip-compressed (level 9: what zeros from
    pruning save in a compressed download) and LUT-compressed for TFLM (what few distinct
    values per channel save on the device), and how many tensors the LUT compresses. `lut`:
    `lut_compress(flatbuffer)`'s result when the caller already has it (computed when None)."""
    compressed, tensors = lut_compress(flatbuffer) if lut is None else lut
    return {
        "flash_bytes": len(flatbuffer),
        "gzip_bytes": len(gzip.compress(bytes(flatbuffer), compresslevel=9)),
        "lut_bytes": len(compressed),
        "lut_tensors": sum(row["compressed"] for row in tensors),
    }
