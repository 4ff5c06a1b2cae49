// Runs an exported int8 model (model_data.cc and model_ops.h of `nlpool export`) on the target
// over inputs the host hands over through semihosting, and reports what the host measures.
//
// Build with -DNLPOOL_MODEL=<name> (the export's C name). Files, in the emulator's working folder:
//   nlpool_in.bin   the inputs, int8, one after the other (absent: one input at the zero point)
//   nlpool_out.bin  written: the outputs, int8, in the same order
//   nlpool_ops.bin  with -DNLPOOL_DUMP_TENSORS, written: every op's output after each input,
//                   the ops in order (the interpreter keeps all tensors)
// Standard output: "nlpool: KEY VALUE..." lines (arena, ticks per input and per op, stack).
// A detector's export (-DNLPOOL_CENTROID_THRESHOLD=... or -DNLPOOL_SSD) also decodes each output on
// the target and reports its detections (detections.h).
#include <cstdint>
#include <cstdio>

#include "board.h"
#include "detections.h"
#include "model_data.h"
#include "model_ops.h"
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"

#define NLPOOL_JOIN3(a, b, c) a##b##c
#define NLPOOL_SYMBOL(prefix, name, suffix) NLPOOL_JOIN3(prefix, name, suffix)
#define MODEL_DATA NLPOOL_SYMBOL(, NLPOOL_MODEL, _data)
#define MODEL_RESOLVER NLPOOL_SYMBOL(, NLPOOL_MODEL, _op_resolver)
#define MODEL_ARENA NLPOOL_SYMBOL(, NLPOOL_MODEL, _arena_size)
#define MODEL_OPERATORS NLPOOL_SYMBOL(, NLPOOL_MODEL, _operator_count)
#define REGISTER_OPS NLPOOL_SYMBOL(register_, NLPOOL_MODEL, _ops)

#ifdef NLPOOL_DUMP_TENSORS
constexpr bool kDumpTensors = true;
#else
constexpr bool kDumpTensors = false;
#endif
#ifndef NLPOOL_ARENA_BYTES
#define NLPOOL_ARENA_BYTES MODEL_ARENA
#endif

namespace {

alignas(16) uint8_t tensor_arena[NLPOOL_ARENA_BYTES];

// Core-clock ticks of each op of one Invoke, in order: a measuring harness's table (12 bytes an
// op, sized to the model's operators), which a deployed firmware does not carry.
class OpTicks : public tflite::MicroProfilerInterface {
 public:
  static constexpr uint32_t kMaxOps = MODEL_OPERATORS;
  // The interpreter's op events do not nest (the DECODE kernels report to the alternate profiler,
  // left unset here): one begin tick is kept at a time
  uint32_t BeginEvent(const char* tag) override {
    if (count_ < kMaxOps) tags_[count_] = tag;
    begin_ = ticks_now();
    return count_++;
  }
  void EndEvent(uint32_t handle) override {
    if (handle < kMaxOps) ticks_[handle] = ticks_now() - begin_;
  }
  void Clear() { count_ = 0; }
  void Print() const {
    for (uint32_t i = 0; i < count_ && i < kMaxOps; ++i) {
      printf("nlpool: op %lu %s %llu\n", (unsigned long)i, tags_[i], (unsigned long long)ticks_[i]);
    }
  }

 private:
  uint32_t count_ = 0;
  uint64_t begin_ = 0;
  const char* tags_[kMaxOps];
  uint64_t ticks_[kMaxOps];
};

OpTicks op_ticks;

#ifdef NLPOOL_DECODES
alignas(8) uint8_t decode_scratch[nlpool_detections::kScratchBytes];  // the SSD's tables stay: filled once
#endif

int Fail(const char* what) {
  printf("nlpool: error %s\n", what);
  return 1;
}

// Each op's output, in op order, as the interpreter holds it after Invoke.
void DumpOpOutputs(tflite::MicroInterpreter& interpreter, const tflite::Model* model, FILE* file) {
  const tflite::SubGraph* graph = model->subgraphs()->Get(0);
  for (uint32_t i = 0; i < graph->operators()->size(); ++i) {
    const tflite::Operator* op = graph->operators()->Get(i);
    for (uint32_t k = 0; k < op->outputs()->size(); ++k) {
      TfLiteEvalTensor* tensor = interpreter.GetTensor(op->outputs()->Get(k));
      size_t bytes = 1;
      for (int d = 0; d < tensor->dims->size; ++d) bytes *= tensor->dims->data[d];
      if (tensor->type == kTfLiteInt32) bytes *= 4;
      fwrite(tensor->data.raw, 1, bytes, file);
    }
  }
}

}  // namespace

int main() {
  RegisterDebugLogCallback([](const char* s) { fputs(s, stdout); });  // TFLM's messages (MicroPrintf)
  const tflite::Model* model = tflite::GetModel(MODEL_DATA);
  if (model->version() != TFLITE_SCHEMA_VERSION) return Fail("schema-version");
  static MODEL_RESOLVER resolver;
  if (REGISTER_OPS(resolver) != kTfLiteOk) return Fail("resolver");
  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, sizeof(tensor_arena), nullptr,
                                              &op_ticks, kDumpTensors);
  printf("nlpool: arena_size %lu\n", (unsigned long)sizeof(tensor_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return Fail("allocate-tensors");
  printf("nlpool: arena_used %lu\n", (unsigned long)interpreter.arena_used_bytes());
  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  printf("nlpool: io %lu %lu\n", (unsigned long)input->bytes, (unsigned long)output->bytes);

  FILE* inputs = fopen("nlpool_in.bin", "rb");
  FILE* outputs = fopen("nlpool_out.bin", "wb");
  FILE* dump = kDumpTensors ? fopen("nlpool_ops.bin", "wb") : nullptr;
  if (outputs == nullptr || (kDumpTensors && dump == nullptr)) return Fail("output-file");
  ticks_start();
  uint32_t count = 0;
  for (;; ++count) {
    if (inputs == nullptr) {
      if (count == 1) break;
      for (size_t i = 0; i < input->bytes; ++i) input->data.int8[i] = (int8_t)input->params.zero_point;
    } else if (fread(input->data.raw, 1, input->bytes, inputs) != input->bytes) {
      break;
    }
    op_ticks.Clear();
    const uint64_t begin = ticks_now();
    if (interpreter.Invoke() != kTfLiteOk) return Fail("invoke");
    const uint64_t ticks = ticks_now() - begin;
    printf("nlpool: input %lu ticks %llu\n", (unsigned long)count, (unsigned long long)ticks);
    if (count == 0) op_ticks.Print();
    if (fwrite(output->data.raw, 1, output->bytes, outputs) != output->bytes) return Fail("write");
#ifdef NLPOOL_DECODES
    if (!nlpool_report_detections(output->data.int8, output->bytes, count, decode_scratch, count == 0)) {
      return Fail("decode-size");
    }
#endif
    if (dump != nullptr) DumpOpOutputs(interpreter, model, dump);
  }
  fclose(outputs);
  if (dump != nullptr) fclose(dump);
  printf("nlpool: stack_high_water %lu\n", (unsigned long)stack_high_water_bytes());
  printf("nlpool: done %lu\n", (unsigned long)count);
  return 0;
}
