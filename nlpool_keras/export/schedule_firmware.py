"""The C/C++ files a TFLM firmware needs to run a patch schedule (`export.program.Program`).

    write_schedule_firmware(program, "out", arenas, ops, name="net", input_zero_point=-128)

writes
- `schedule_models.h/.cc`: every phase model as a 16-byte-aligned array (identical tiles once);
- `schedule_plan.h`: the steps, buffers and the size of the one SRAM block they share;
- `schedule_runner.h`: `nlpool::RunSchedule`, the loop over steps, free of TFLM: for each step it
  starts an interpreter on the block below the pool buffers alive then, copies each read region
  (from the pool, or from the image source, which streams the image), invokes, and pastes each
  output into the pool (or hands the final outputs to a sink);
- `schedule_ops.h`: one op resolver covering every phase;
- `schedule_engine.h`: the TFLM engine: one `MicroInterpreter` at a time, in place, or (`Keep`)
  every phase model's interpreter built once at boot, its persistent data in a pool of its own;
- `main.cc`: one inference on a constant image with that engine, printing the arg-max (a pixel
  input: the input's contract, `int8_of_pixel`, and a gray image).
"""

from nlpool_keras.export.firmware import (
    ARENA_MARGIN,
    arena_with_margin,
    c_array,
    c_identifier,
    pixel_contract,
    resolver_header,
    write_files,
)
from nlpool_keras.export.program import aligned, block_bytes, program_sram, region_of, step_extents

_RUNNER = """// nlpool::RunSchedule: a patch schedule's steps over one SRAM block, independent of TFLM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace nlpool {

struct Region {
  int16_t row0, row1, col0, col1;
};

// A row-major (height, width, channels) int8 map; offset: from the block's top, or -1 when
// the buffer is not held (the image, streamed from its source; the final outputs, handed over).
struct Buffer {
  int32_t offset;
  int16_t height, width, channels;
};

struct Access {
  uint8_t buffer;
  Region region;
};

// One phase model invoked once; pool_bytes: the block's top bytes in use during the step.
struct Step {
  uint8_t model, reads, writes;
  const Access* read;
  const Access* write;
  int32_t pool_bytes;
};

inline size_t RegionBytes(const Region& r, const Buffer& b) {
  return (size_t)(r.row1 - r.row0) * (r.col1 - r.col0) * b.channels;
}

inline int8_t* BufferData(uint8_t* block, size_t block_bytes, const Buffer& b) {
  return reinterpret_cast<int8_t*>(block + block_bytes - b.offset) -
         (size_t)b.height * b.width * b.channels;
}

// Copies region `r` of map `map` to or from the packed array `packed`.
inline void CopyRegion(int8_t* map, const Buffer& b, const Region& r, int8_t* packed, bool to_map) {
  const size_t row = (size_t)(r.col1 - r.col0) * b.channels;
  for (int y = r.row0; y < r.row1; ++y) {
    int8_t* line = map + ((size_t)y * b.width + r.col0) * b.channels;
    int8_t* piece = packed + (size_t)(y - r.row0) * row;
    if (to_map) {
      memcpy(line, piece, row);
    } else {
      memcpy(piece, line, row);
    }
  }
}

// Engine: bool Begin(int model, uint8_t* arena, size_t bytes); int8_t* Input(int i);
//         bool Invoke(); const int8_t* Output(int i).
// image(int8_t* destination, const Region& r): writes image rows r.row0..r.row1, columns
//         r.col0..r.col1, all channels, row-major (quantized with the model input's scale).
// sink(int output, const int8_t* data, size_t bytes): receives each final output.
template <typename Engine, typename ImageSource, typename OutputSink>
bool RunSchedule(const Step* steps, int count, const Buffer* buffers, uint8_t* block, size_t block_bytes,
                 Engine& engine, ImageSource& image, OutputSink& sink) {
  for (int s = 0; s < count; ++s) {
    const Step& step = steps[s];
    if (!engine.Begin(step.model, block, block_bytes - step.pool_bytes)) return false;
    for (int i = 0; i < step.reads; ++i) {
      const Access& a = step.read[i];
      const Buffer& b = buffers[a.buffer];
      if (b.offset < 0) {
        image(engine.Input(i), a.region);
      } else {
        CopyRegion(BufferData(block, block_bytes, b), b, a.region, engine.Input(i), false);
      }
    }
    if (!engine.Invoke()) return false;
    for (int i = 0; i < step.writes; ++i) {
      const Access& a = step.write[i];
      const Buffer& b = buffers[a.buffer];
      int8_t* output = const_cast<int8_t*>(engine.Output(i));
      if (b.offset < 0) {
        sink(i, output, RegionBytes(a.region, b));
      } else {
        CopyRegion(BufferData(block, block_bytes, b), b, a.region, output, true);
      }
    }
  }
  return true;
}

}  // namespace nlpool
"""

_ENGINE = """// TflmEngine: runs {name}'s phase models for nlpool::RunSchedule with TensorFlow Lite Micro.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include "schedule_models.h"
#include "schedule_ops.h"
#include "schedule_runner.h"
#include "tensorflow/lite/micro/arena_allocator/non_persistent_arena_buffer_allocator.h"
#include "tensorflow/lite/micro/arena_allocator/persistent_arena_buffer_allocator.h"
#include "tensorflow/lite/micro/memory_planner/greedy_memory_planner.h"
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"

// Two ways to hold the interpreters:
// - per step (the default): one MicroInterpreter at a time, built in place on the part of the
//   block the step may use. A step that runs the model of the step before, on the same part of
//   the block or a larger one (the pool above it no larger), reuses it: no second AllocateTensors.
//   The set-up (AllocateTensors, the kernels' Prepare) is paid at almost every step of every image.
// - kept (`Keep`, once at boot): every phase model's interpreter built once, its persistent data
//   (op data, requantization multipliers, tensor records, the interpreter itself) in a pool of
//   its own, its tensors at the block's bottom, in the smallest part of the block any of its steps
//   leaves free. `Begin` then only picks the model's interpreter: no set-up per image, for the
//   pool's bytes (`PersistentBytes()`) of SRAM besides the block.
class TflmEngine {{
 public:
  explicit TflmEngine({name}_op_resolver& resolver) : resolver_(resolver) {{}}
  ~TflmEngine() {{ Reset(); }}

  // Builds every phase model's interpreter for `steps` run on `block`; false (and why, through
  // MicroPrintf) when the pool or a step's part of the block is too small. The pool holds a
  // table of the interpreters at its start, then their data from its end down, model after model.
  bool Keep(uint8_t* pool, size_t pool_bytes, const nlpool::Step* steps, int count, uint8_t* block,
            size_t block_bytes) {{
    Reset();
    constexpr size_t kTableBytes = (sizeof(Kept) * {name}_model_count + 15) / 16 * 16;
    uint8_t* const floor = pool + kTableBytes;
    uint8_t* end = pool + pool_bytes;
    Kept* kept = pool_bytes < kTableBytes ? nullptr : new (pool) Kept[{name}_model_count]();
    for (int m = 0; m < {name}_model_count; ++m) {{
      size_t bytes = block_bytes;
      for (int s = 0; s < count; ++s) {{
        if (steps[s].model == m && block_bytes - steps[s].pool_bytes < bytes) bytes = block_bytes - steps[s].pool_bytes;
      }}
      // MicroAllocator::Create places its own objects in the pool unchecked: room for them first
      tflite::MicroAllocator* allocator = kept == nullptr || end - floor < kAllocatorBytes
                                              ? nullptr
                                              : tflite::MicroAllocator::Create(floor, end - floor, block, bytes);
      void* place =
          allocator == nullptr ? nullptr : allocator->AllocatePersistentBuffer(sizeof(tflite::MicroInterpreter));
      if (place == nullptr) {{
        MicroPrintf("model %d: the persistent pool of %d bytes is too small", m, (int)pool_bytes);
        return false;
      }}
      Kept& k = kept[m];
      k.interpreter = new (place) tflite::MicroInterpreter(tflite::GetModel({name}_models[m]), resolver_, allocator);
      if (k.interpreter->AllocateTensors() != kTfLiteOk) {{
        MicroPrintf("model %d: AllocateTensors failed in %d bytes of the block and %d of the persistent pool of %d",
                    m, (int)bytes, (int)(end - floor), (int)pool_bytes);
        return false;
      }}
      k.block_bytes = bytes;
      uint8_t* start = static_cast<uint8_t*>(allocator->AllocatePersistentBuffer(0));  // its persistent data's
      k.persistent_bytes = end - start;
      end = start;
    }}
    kept_ = kept;
    kept_block_ = block;
    persistent_bytes_ = kTableBytes + (pool + pool_bytes - end);
    return true;
  }}
  bool Begin(int model, uint8_t* arena, size_t bytes) {{
    if (kept_ != nullptr) {{
      if (arena != kept_block_ || bytes < kept_[model].block_bytes) {{
        MicroPrintf("model %d: kept for %d bytes of the block, asked for %d", model, (int)kept_[model].block_bytes,
                    (int)bytes);
        return false;
      }}
      interpreter_ = kept_[model].interpreter;
      return true;
    }}
    if (interpreter_ != nullptr && model == model_ && arena == arena_ && bytes >= bytes_) return true;
    Reset();
    model_ = model;
    arena_ = arena;
    bytes_ = bytes;
    interpreter_ = new (storage_) tflite::MicroInterpreter(tflite::GetModel({name}_models[model]), resolver_,
                                                           arena, bytes);
    if (interpreter_->AllocateTensors() != kTfLiteOk) {{
      MicroPrintf("model %d: AllocateTensors failed in %d bytes", model, (int)bytes);
      Reset();
      return false;
    }}
    return true;
  }}
  int8_t* Input(int i) {{ return interpreter_->input(i)->data.int8; }}
  bool Invoke() {{ return interpreter_->Invoke() == kTfLiteOk; }}
  const int8_t* Output(int i) {{ return interpreter_->output(i)->data.int8; }}
  size_t ArenaUsed() const {{ return interpreter_->arena_used_bytes(); }}
  // Kept: the pool's bytes in use (the table and every model's data), and one model's data.
  size_t PersistentBytes() const {{ return persistent_bytes_; }}
  size_t PersistentBytes(int model) const {{ return kept_ == nullptr ? 0 : kept_[model].persistent_bytes; }}

 private:
  struct Kept {{
    tflite::MicroInterpreter* interpreter;
    size_t block_bytes, persistent_bytes;
  }};
  void Reset() {{
    if (interpreter_ != nullptr && kept_ == nullptr) interpreter_->~MicroInterpreter();
    interpreter_ = nullptr;
    kept_ = nullptr;  // kept interpreters live in their pool, which holds nothing to release
  }}
  static constexpr ptrdiff_t kAllocatorBytes =
      sizeof(tflite::PersistentArenaBufferAllocator) + sizeof(tflite::NonPersistentArenaBufferAllocator) +
      sizeof(tflite::GreedyMemoryPlanner) + sizeof(tflite::MicroAllocator) + 4 * 16;  // and their alignment
  {name}_op_resolver& resolver_;
  int model_ = -1;
  uint8_t* arena_ = nullptr;
  size_t bytes_ = 0;
  alignas(tflite::MicroInterpreter) unsigned char storage_[sizeof(tflite::MicroInterpreter)];
  tflite::MicroInterpreter* interpreter_ = nullptr;
  Kept* kept_ = nullptr;  // in the pool
  uint8_t* kept_block_ = nullptr;
  size_t persistent_bytes_ = 0;
}};
"""

_MAIN = """// One inference of {name}'s patch schedule with TensorFlow Lite Micro: constant image, arg-max printed.
#include <cstdint>

#include "schedule_engine.h"
#include "schedule_plan.h"
#include "schedule_runner.h"

namespace {{
{pixels}
alignas(16) uint8_t sram_block[{name}_block_bytes];

// Replace with the camera or flash read of image rows r.row0..r.row1, columns r.col0..r.col1.
void ReadImage(int8_t* destination, const nlpool::Region& r) {{
  const size_t bytes = (size_t)(r.row1 - r.row0) * (r.col1 - r.col0) * {name}_image_channels;
{fill}}}

int best_class = -1;

void TakeOutput(int output, const int8_t* data, size_t bytes) {{
  if (output != 0) return;
  best_class = 0;
  for (size_t i = 1; i < bytes; ++i) {{
    if (data[i] > data[best_class]) best_class = (int)i;
  }}
}}

}}  // namespace

int main() {{
  {name}_op_resolver resolver;
  if (register_{name}_ops(resolver) != kTfLiteOk) return 1;
  TflmEngine engine(resolver);
  // Set-up once at boot instead of at each step, for SRAM (schedule_engine.h): a static pool and
  //   engine.Keep(pool, sizeof(pool), {name}_steps, {name}_step_count, sram_block, sizeof(sram_block));
  if (!nlpool::RunSchedule({name}_steps, {name}_step_count, {name}_buffers, sram_block, sizeof(sram_block),
                           engine, ReadImage, TakeOutput)) {{
    return 1;
  }}
  MicroPrintf("class %d, one SRAM block of %d bytes", best_class, (int)sizeof(sram_block));
  return 0;
}}
"""


def _region(program, access):
    (r0, r1), (c0, c1) = region_of(program, access)
    return f"{{{r0}, {r1}, {c0}, {c1}}}"


_GRAY_IMAGE = "  for (size_t i = 0; i < bytes; ++i) destination[i] = int8_of_pixel(128);  // gray\n"
_ZERO_POINT_IMAGE = "  for (size_t i = 0; i < bytes; ++i) destination[i] = (int8_t){name}_input_zero_point;\n"


def plan_header(program, arenas, name, input_zero_point):
    """`schedule_plan.h`: buffers, steps and the block size, as constant tables."""
    extents = step_extents(program)
    if len(program.models) > 255 or len(program.buffers) > 255:
        raise ValueError(f"a schedule of {len(program.models)} models / {len(program.buffers)} buffers exceeds 255")
    buffers = "\n".join(
        f"    {{{-1 if b.offset is None else b.offset}, {b.shape[0]}, {b.shape[1]}, {b.shape[2]}}},  // {b.name}"
        for b in program.buffers
    )
    accesses, steps = [], []
    for s, (step, extent) in enumerate(zip(program.steps, extents, strict=True)):
        for kind, items in (("read", step.reads), ("write", step.writes)):
            rows = ", ".join(f"{{{a.buffer}, {_region(program, a)}}}" for a in items)
            accesses.append(f"inline constexpr nlpool::Access {name}_{kind}_{s}[] = {{{rows}}};")
        steps.append(
            f"    {{{step.model}, {len(step.reads)}, {len(step.writes)}, {name}_read_{s}, {name}_write_{s}, "
            f"{aligned(extent)}}},  // {step.label}"
        )
    peak = program_sram(program, arenas)["peak_bytes"]
    block = block_bytes(program, [arena_with_margin(arenas[step.model]) for step in program.steps])
    return (
        f"// {name}'s patch schedule: {len(program.steps)} steps of {len(program.models)} phase models.\n"
        f"// Peak SRAM measured in TFLM: {peak} bytes (arena + pool); the block adds x{ARENA_MARGIN} to each arena.\n"
        '#pragma once\n\n#include "schedule_runner.h"\n\n'
        f"constexpr int {name}_block_bytes = {block};\n"
        f"constexpr int {name}_input_zero_point = {int(input_zero_point)};\n"
        f"constexpr int {name}_image_channels = {program.buffers[0].shape[2]};\n"
        f"constexpr int {name}_step_count = {len(program.steps)};\n\n"
        f"inline constexpr nlpool::Buffer {name}_buffers[] = {{\n{buffers}\n}};\n\n"
        + "\n".join(accesses)
        + f"\n\ninline constexpr nlpool::Step {name}_steps[] = {{\n"
        + "\n".join(steps)
        + "\n};\n"
    )


def write_schedule_firmware(program, directory, arenas, ops, name="model", input_zero_point=0, pixels=None):
    """Writes the schedule's firmware files (module docstring) into `directory`; returns their paths.

    Args:
        program: an `export.program.Program` whose models are in TFLM's form (`micro_flatbuffer`).
        arenas: {model index: TFLM arena bytes measured}.
        ops: op names of all the phase models.
        input_zero_point: the int8 image's zero point.
        pixels: None, or the `export.preprocessing.PixelInput` of a pixel input, whose contract
            `main.cc` writes (`int8_of_pixel`) and reads a gray image through; None: `main.cc`
            reads an image at the zero point.
    """
    name = c_identifier(name)
    if pixels is None:
        main = _MAIN.format(name=name, pixels="", fill=_ZERO_POINT_IMAGE.format(name=name))
    else:
        main = _MAIN.format(name=name, pixels=pixel_contract(pixels), fill=_GRAY_IMAGE)
    count = len(program.models)
    models = "".join(c_array(f"{name}_model_{m}", data) for m, data in enumerate(program.models))
    table = ", ".join(f"{name}_model_{m}" for m in range(count))
    comment = f"The ops of {name}'s {count} phase models."
    files = {
        "schedule_models.h": (
            f"// {name}: the int8 phase models of its patch schedule, for TensorFlow Lite Micro.\n#pragma once\n\n"
            f"constexpr int {name}_model_count = {count};\n"
            f"extern const unsigned char* const {name}_models[{name}_model_count];\n"
        ),
        "schedule_models.cc": (
            f'#include "schedule_models.h"\n\n{models}\n'
            f"const unsigned char* const {name}_models[{count}] = {{{table}}};\n"
        ),
        "schedule_plan.h": plan_header(program, arenas, name, input_zero_point),
        "schedule_runner.h": _RUNNER,
        "schedule_ops.h": resolver_header(name, ops, comment),
        "schedule_engine.h": _ENGINE.format(name=name),
        "main.cc": main,
    }
    return write_files(directory, files)
