"""The C/C++ files a TFLM firmware needs for one int8 model.

    write_firmware(flatbuffer, "tflm/out", arena_bytes=micro_arena, ops=op_names)

writes `model_data.h/.cc` (the flatbuffer as a 16-byte-aligned array),
`model_ops.h` (a `MicroMutableOpResolver` with exactly the model's ops, the arena
size and the operator count) and `main.cc` (one inference on a constant input,
printing the arg-max; for a pixel input, `export.preprocessing`, a gray image
through `int8_of_pixel`, the input's contract). `model_data.cc` needs no TFLM
header; the others compile inside a TFLM tree (see tflm/README.md).
"""

import os
import re

from nlpool_keras.export.flatbuffer import operator_count
from nlpool_keras.export.preflight import CUSTOM_OPS, TFLM_INT8_OPS
from nlpool_keras.export.preprocessing import PIXEL_OFFSET

# TFLM's op decoding LUT-compressed constants (a firmware built with USE_TFLM_COMPRESSION)
DECODE_OP = "TFLM_DECODE"
_RESOLVER_METHODS = {**TFLM_INT8_OPS, DECODE_OP: "AddDecode"}
# TFLM's arena also holds its own bookkeeping, which differs a little between builds
ARENA_MARGIN = 1.1

_MAIN = """// One inference of {name} with TensorFlow Lite Micro: constant input, arg-max printed.
#include <cstddef>
#include <cstdint>

#include "model_data.h"
#include "model_ops.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {{
alignas(16) uint8_t tensor_arena[{name}_arena_size];
{pixels}}}  // namespace

int main() {{
  const tflite::Model* model = tflite::GetModel({name}_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {{
    MicroPrintf("schema version %d, expected %d", model->version(), TFLITE_SCHEMA_VERSION);
    return 1;
  }}
  {name}_op_resolver resolver;
  if (register_{name}_ops(resolver) != kTfLiteOk) return 1;
  tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, sizeof(tensor_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) {{
    MicroPrintf("AllocateTensors failed: arena of %d bytes", (int)sizeof(tensor_arena));
    return 1;
  }}
  TfLiteTensor* input = interpreter.input(0);
{fill}  if (interpreter.Invoke() != kTfLiteOk) return 1;
  TfLiteTensor* output = interpreter.output(0);
  int best = 0;
  for (int i = 1; i < output->dims->data[output->dims->size - 1]; ++i) {{
    if (output->data.int8[i] > output->data.int8[best]) best = i;
  }}
  MicroPrintf("class %d, arena used %d of %d bytes", best, (int)interpreter.arena_used_bytes(),
              (int)sizeof(tensor_arena));
  return 0;
}}
"""


_PIXEL_CONTRACT = """
// The input's contract: RGB pixels p in [0, 255], (H, W, C) row-major, each written as the int8
// p - {offset}. Its quantization, scale {scale!r} and zero point {zero_point}:
// {description}.
inline int8_t int8_of_pixel(uint8_t p) {{ return (int8_t)(p - {offset}); }}
"""
_GRAY_IMAGE = "  for (size_t i = 0; i < input->bytes; ++i) input->data.int8[i] = int8_of_pixel(128);  // gray\n"
_ZERO_POINT_INPUT = (
    "  for (size_t i = 0; i < input->bytes; ++i) input->data.int8[i] = (int8_t)input->params.zero_point;\n"
)


def pixel_contract(pixels):
    """C++ lines stating a pixel input's contract (`export.preprocessing.PixelInput`) and defining
    `int8_of_pixel`, the int8 a firmware writes for a pixel."""
    return _PIXEL_CONTRACT.format(offset=PIXEL_OFFSET, **pixels._asdict())


def c_identifier(name):
    """A C identifier from a file or model name."""
    identifier = re.sub(r"\W", "_", name)
    return identifier if re.match(r"[A-Za-z_]", identifier) else f"m_{identifier}"


def c_array(symbol, data):
    """C++ source of a 16-byte-aligned byte array `symbol` and its `symbol_len` (TFLM reads a
    flatbuffer in place)."""
    data = bytes(data)
    rows = (", ".join(f"0x{b:02x}" for b in data[i : i + 12]) for i in range(0, len(data), 12))
    return (
        f"alignas(16) const unsigned char {symbol}[] = {{\n  "
        + ",\n  ".join(rows)
        + f"\n}};\nconst unsigned int {symbol}_len = {len(data)};\n"
    )


def resolver_header(name, ops, comment, constants=""):
    """`<name>_op_resolver` and `register_<name>_ops` for `ops` (names in `TFLM_INT8_OPS`,
    `DECODE_OP` or `CUSTOM_OPS`, which `custom_ops.h` registers all together), after a `comment`
    line and any `constants`."""
    unknown = sorted(set(ops) - set(_RESOLVER_METHODS) - set(CUSTOM_OPS))
    if unknown:
        raise ValueError(f"ops={unknown} have no TFLM int8 kernel; run the pre-flight first")
    builtin = [op for op in ops if op not in CUSTOM_OPS]
    custom = len(builtin) < len(ops)
    registrations = [f"  if (resolver.{_RESOLVER_METHODS[op]}() != kTfLiteOk) return kTfLiteError;\n" for op in builtin]
    if custom:  # the project's custom ops, `firmware/kernels/`
        registrations.append("  if (nlpool::RegisterCustomOps(resolver) != kTfLiteOk) return kTfLiteError;\n")
    return (
        f"// {comment}\n"
        + (
            f"// {DECODE_OP} decodes LUT-compressed constants: build TFLM with USE_TFLM_COMPRESSION.\n"
            if DECODE_OP in ops
            else ""
        )
        + '#pragma once\n\n#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n'
        + ('#include "custom_ops.h"  // firmware/kernels/\n' if custom else "")
        + "\n"
        + constants
        + f"using {name}_op_resolver = tflite::MicroMutableOpResolver<{len(builtin) + len(CUSTOM_OPS) * custom}>;\n\n"
        f"inline TfLiteStatus register_{name}_ops({name}_op_resolver& resolver) {{\n"
        + "".join(registrations)
        + "  return kTfLiteOk;\n}\n"
    )


def arena_with_margin(arena_bytes):
    """`ARENA_MARGIN` times a measured arena, rounded up to 16 bytes."""
    return -(-int(arena_bytes * ARENA_MARGIN) // 16) * 16


def write_files(directory, files):
    """Writes {filename: text} into `directory` (created), each atomically; returns the paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for filename, text in files.items():
        path = os.path.join(directory, filename)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        paths.append(path)
    return paths


def write_firmware(flatbuffer, directory, arena_bytes, ops, name="model", pixels=None):
    """Writes the four files into `directory`; returns their paths.

    Args:
        flatbuffer: bytes of the int8 .tflite.
        directory: output folder (created).
        arena_bytes: the arena TFLM needed (measured); the header asks for
            `ARENA_MARGIN` times it, rounded up to 16 bytes.
        ops: op names of the model (`preflight(...)[0]`); each must be in
            `TFLM_INT8_OPS`, or be `DECODE_OP` for a LUT-compressed flatbuffer.
        name: prefix of the C symbols.
        pixels: None, or the `export.preprocessing.PixelInput` of a pixel input, whose
            contract `main.cc` writes (`int8_of_pixel`) and feeds a gray image;
            None: `main.cc` fills the input with its zero point.
    """
    name = c_identifier(name)
    arena = arena_with_margin(arena_bytes)
    if pixels is None:
        main = _MAIN.format(name=name, pixels="", fill=_ZERO_POINT_INPUT)
    else:
        main = _MAIN.format(name=name, pixels=pixel_contract(pixels), fill=_GRAY_IMAGE)
    comment = f"The ops of {name} and the arena it needs ({arena_bytes} bytes measured in TFLM, x{ARENA_MARGIN})."
    constants = (
        f"constexpr int {name}_arena_size = {arena};\n"
        f"constexpr int {name}_operator_count = {operator_count(flatbuffer)};  // operators one Invoke runs\n"
    )
    files = {
        "model_data.h": (
            f"// {name}: int8 TFLite flatbuffer for TensorFlow Lite Micro.\n#pragma once\n\n"
            f"extern const unsigned char {name}_data[];\nextern const unsigned int {name}_data_len;\n"
        ),
        "model_data.cc": '#include "model_data.h"\n\n' + c_array(f"{name}_data", flatbuffer),
        "model_ops.h": resolver_header(name, ops, comment, constants),
        "main.cc": main,
    }
    return write_files(directory, files)
