// A C interface to a TFLM interpreter built for the host from the pinned TFLM sources, with
// every builtin op (TFLM's Python resolver) and the project's custom ops: what the host runs
// where the firmware runs a custom kernel (firmware/host_runtime.py loads it with ctypes).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>

#include "python/tflite_micro/python_ops_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "custom_ops.h"

namespace {

struct Host {
  std::unique_ptr<uint8_t[]> model_copy;
  std::unique_ptr<uint8_t[]> arena;
  tflite::PythonOpsResolver resolver;
  std::unique_ptr<tflite::MicroInterpreter> interpreter;
};

TfLiteTensor* Tensor(Host* host, int output, int index) {
  if (output) {
    return index < static_cast<int>(host->interpreter->outputs_size()) ? host->interpreter->output(index) : nullptr;
  }
  return index < static_cast<int>(host->interpreter->inputs_size()) ? host->interpreter->input(index) : nullptr;
}

}  // namespace

extern "C" {

// A ready interpreter for the flatbuffer (copied), or null with the reason in `error`.
__attribute__((visibility("default"))) void* nlpool_host_create(const uint8_t* model, size_t model_bytes,
                                                                size_t arena_bytes, char* error,
                                                                size_t error_bytes) {
  auto host = std::make_unique<Host>();
  host->model_copy.reset(new (std::nothrow) uint8_t[model_bytes + 16]);
  host->arena.reset(new (std::nothrow) uint8_t[arena_bytes + 16]);
  if (!host->model_copy || !host->arena) {
    std::snprintf(error, error_bytes, "no memory for a %zu-byte arena", arena_bytes);
    return nullptr;
  }
  uint8_t* aligned = host->model_copy.get() + (16 - reinterpret_cast<uintptr_t>(host->model_copy.get()) % 16) % 16;
  std::memcpy(aligned, model, model_bytes);
  if (nlpool::RegisterCustomOps(host->resolver) != kTfLiteOk) {
    std::snprintf(error, error_bytes, "the project's custom ops could not be registered");
    return nullptr;
  }
  host->interpreter = std::make_unique<tflite::MicroInterpreter>(tflite::GetModel(aligned), host->resolver,
                                                                 host->arena.get(), arena_bytes);
  if (host->interpreter->AllocateTensors() != kTfLiteOk) {
    std::snprintf(error, error_bytes, "AllocateTensors failed (arena of %zu bytes)", arena_bytes);
    return nullptr;
  }
  return host.release();
}

__attribute__((visibility("default"))) void nlpool_host_destroy(void* host) { delete static_cast<Host*>(host); }

__attribute__((visibility("default"))) int nlpool_host_invoke(void* host) {
  return static_cast<Host*>(host)->interpreter->Invoke() == kTfLiteOk ? 0 : 1;
}

__attribute__((visibility("default"))) size_t nlpool_host_arena_used(void* host) {
  return static_cast<Host*>(host)->interpreter->arena_used_bytes();
}

// A tensor of the graph's inputs (output = 0) or outputs (1): its data, bytes, TfLiteType,
// rank, dims (up to 8), scale and zero point. Returns 0, or 1 when there is no such tensor.
__attribute__((visibility("default"))) int nlpool_host_tensor(void* host, int output, int index, void** data,
                                                             size_t* bytes, int* type, int* rank, int* dims,
                                                             float* scale, int* zero_point) {
  TfLiteTensor* tensor = Tensor(static_cast<Host*>(host), output, index);
  if (tensor == nullptr || tensor->dims->size > 8) return 1;
  *data = tensor->data.data;
  *bytes = tensor->bytes;
  *type = tensor->type;
  *rank = tensor->dims->size;
  for (int d = 0; d < tensor->dims->size; ++d) dims[d] = tensor->dims->data[d];
  *scale = tensor->params.scale;
  *zero_point = tensor->params.zero_point;
  return 0;
}

}  // extern "C"
