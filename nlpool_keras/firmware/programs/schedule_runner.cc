// Runs an exported patch schedule (the schedule/ folder of `nlpool export --schedule`) on the
// target over images the host hands over through semihosting, and reports what the host measures.
//
// Build with -DNLPOOL_MODEL=<name> (the export's C name); -DNLPOOL_BLOCK_BYTES=<bytes> sizes the
// SRAM block (default: the export's, each arena measured on the host with a margin); with
// -DNLPOOL_KEEP_POOL_BYTES=<bytes>, the phase models' interpreters are built once at boot
// (TflmEngine::Keep) with their persistent data in a pool of that size, and the report adds the
// boot's set-up ticks and the pool's bytes used (all models', and each one's).
// Files, in the emulator's working folder:
//   nlpool_in.bin   the int8 images, one after the other, read region by region as a camera
//                   or flash would stream them (absent: one image at the zero point)
//   nlpool_out.bin  written: each image's final output, int8
// Standard output: "nlpool: KEY VALUE..." lines (the block, ticks per image split into the steps'
// set-up, their invocations and the copies between them, each step's arena on the first image,
// the largest arena, the stack).
// A detector's schedule (built with its decoding, see detections.h) then decodes each image's
// output in the SRAM block, which the schedule no longer needs: the output moved to its start,
// the decoder's scratch after it (the SSD's exponential tables filled again for each image).
#include <cstdint>
#include <cstdio>

#include <cstring>

#include "board.h"
#include "detections.h"
#include "schedule_engine.h"
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "schedule_plan.h"
#include "schedule_runner.h"

#define NLPOOL_JOIN3(a, b, c) a##b##c
#define NLPOOL_SYMBOL(prefix, name, suffix) NLPOOL_JOIN3(prefix, name, suffix)
#define PLAN(suffix) NLPOOL_SYMBOL(, NLPOOL_MODEL, suffix)
#define REGISTER_OPS NLPOOL_SYMBOL(register_, NLPOOL_MODEL, _ops)

namespace {

#ifdef NLPOOL_BLOCK_BYTES
alignas(16) uint8_t sram_block[NLPOOL_BLOCK_BYTES];
#else
alignas(16) uint8_t sram_block[PLAN(_block_bytes)];
#endif
#ifdef NLPOOL_KEEP_POOL_BYTES
alignas(16) uint8_t persistent_pool[NLPOOL_KEEP_POOL_BYTES];
#endif

// TflmEngine with its set-up and invocations timed and its largest arena kept.
class TimedEngine {
 public:
  explicit TimedEngine(PLAN(_op_resolver) & resolver) : engine_(resolver) {}
  bool Begin(int model, uint8_t* arena, size_t bytes) {
    const uint64_t begin = ticks_now();
    const bool ok = engine_.Begin(model, arena, bytes);
    step_setup_ = ticks_now() - begin;
    setup_ticks += step_setup_;
    model_ = model;
    if (ok && engine_.ArenaUsed() > arena_used) arena_used = engine_.ArenaUsed();
    return ok;
  }
#ifdef NLPOOL_KEEP_POOL_BYTES
  bool Keep(uint8_t* pool, size_t pool_bytes) {
    return engine_.Keep(pool, pool_bytes, PLAN(_steps), PLAN(_step_count), sram_block, sizeof(sram_block));
  }
  size_t PersistentBytes(int model = -1) const {
    return model < 0 ? engine_.PersistentBytes() : engine_.PersistentBytes(model);
  }
#endif
  int8_t* Input(int i) { return engine_.Input(i); }
  bool Invoke() {
    const uint64_t begin = ticks_now();
    const bool ok = engine_.Invoke();
    const uint64_t ticks = ticks_now() - begin;
    invoke_ticks += ticks;
    if (print_steps) {
      printf("nlpool: step %d model %d setup %llu invoke %llu arena %lu\n", step_++, model_,
             (unsigned long long)step_setup_, (unsigned long long)ticks, (unsigned long)engine_.ArenaUsed());
    }
    return ok;
  }
  const int8_t* Output(int i) { return engine_.Output(i); }
  uint64_t setup_ticks = 0, invoke_ticks = 0;
  size_t arena_used = 0;
  bool print_steps = false;  // each step's ticks (the first image)

 private:
  TflmEngine engine_;
  uint64_t step_setup_ = 0;
  int model_ = -1, step_ = 0;
};

FILE* images = nullptr;
long image_offset = 0;
bool read_failed = false;

// The image rows r.row0..r.row1, columns r.col0..r.col1, all channels, from the current image.
void ReadImage(int8_t* destination, const nlpool::Region& r) {
  const nlpool::Buffer& image = PLAN(_buffers)[0];
  const size_t row_bytes = (size_t)(r.col1 - r.col0) * image.channels;
  for (int row = r.row0; row < r.row1; ++row, destination += row_bytes) {
    if (images == nullptr) {
      for (size_t i = 0; i < row_bytes; ++i) destination[i] = (int8_t)PLAN(_input_zero_point);
      continue;
    }
    const long at = image_offset + ((long)row * image.width + r.col0) * image.channels;
    if (fseek(images, at, SEEK_SET) != 0 || fread(destination, 1, row_bytes, images) != row_bytes) read_failed = true;
  }
}

FILE* outputs = nullptr;
const int8_t* final_output = nullptr;  // where the last step left the image's output (in the block)
size_t final_bytes = 0;

void TakeOutput(int output, const int8_t* data, size_t bytes) {
  if (output != 0) return;
  fwrite(data, 1, bytes, outputs);
  final_output = data;
  final_bytes = bytes;
}

#ifdef NLPOOL_DECODES
// Decodes the image's output inside the block; false when it does not fit or has the wrong size.
bool DecodeInBlock(uint32_t input_index) {
  const size_t start = nlpool_detections::Aligned(final_bytes);
  if (input_index == 0) {
    printf("nlpool: decode_bytes %lu\n", (unsigned long)(start + nlpool_detections::kScratchBytes));
  }
  if (final_output == nullptr || start + nlpool_detections::kScratchBytes > sizeof(sram_block)) return false;
  memmove(sram_block, final_output, final_bytes);
  return nlpool_report_detections(reinterpret_cast<const int8_t*>(sram_block), final_bytes, input_index,
                                  sram_block + start, true);
}
#endif

int Fail(const char* what) {
  printf("nlpool: error %s\n", what);
  return 1;
}

}  // namespace

int main() {
  RegisterDebugLogCallback([](const char* s) { fputs(s, stdout); });  // TFLM's messages (MicroPrintf)
  static PLAN(_op_resolver) resolver;
  if (REGISTER_OPS(resolver) != kTfLiteOk) return Fail("resolver");
  static TimedEngine engine(resolver);
  const nlpool::Buffer& image = PLAN(_buffers)[0];
  const long image_bytes = (long)image.height * image.width * image.channels;
  printf("nlpool: block %lu\n", (unsigned long)sizeof(sram_block));
  images = fopen("nlpool_in.bin", "rb");
  long count = 1;
  if (images != nullptr) {
    fseek(images, 0, SEEK_END);
    count = ftell(images) / image_bytes;
  }
  outputs = fopen("nlpool_out.bin", "wb");
  if (outputs == nullptr) return Fail("output-file");
  ticks_start();
#ifdef NLPOOL_KEEP_POOL_BYTES
  const uint64_t boot = ticks_now();
  if (!engine.Keep(persistent_pool, sizeof(persistent_pool))) return Fail("keep");
  printf("nlpool: kept %llu persistent %lu pool %lu\n", (unsigned long long)(ticks_now() - boot),
         (unsigned long)engine.PersistentBytes(), (unsigned long)sizeof(persistent_pool));
  for (int m = 0; m < PLAN(_model_count); ++m) {
    printf("nlpool: kept_model %d persistent %lu\n", m, (unsigned long)engine.PersistentBytes(m));
  }
#endif
  for (long n = 0; n < count; ++n) {
    image_offset = n * image_bytes;
    engine.setup_ticks = engine.invoke_ticks = 0;
    engine.print_steps = n == 0;
    const uint64_t begin = ticks_now();
    if (!nlpool::RunSchedule(PLAN(_steps), PLAN(_step_count), PLAN(_buffers), sram_block, sizeof(sram_block), engine,
                             ReadImage, TakeOutput)) {
      return Fail("schedule");
    }
    const uint64_t ticks = ticks_now() - begin;
    if (read_failed) return Fail("read");
    printf("nlpool: input %ld ticks %llu setup %llu invoke %llu\n", n, (unsigned long long)ticks,
           (unsigned long long)engine.setup_ticks, (unsigned long long)engine.invoke_ticks);
#ifdef NLPOOL_DECODES
    if (!DecodeInBlock(n)) return Fail("decode-block");
#endif
  }
  fclose(outputs);
  printf("nlpool: arena_used %lu\n", (unsigned long)engine.arena_used);
  printf("nlpool: stack_high_water %lu\n", (unsigned long)stack_high_water_bytes());
  printf("nlpool: done %ld\n", count);
  return 0;
}
