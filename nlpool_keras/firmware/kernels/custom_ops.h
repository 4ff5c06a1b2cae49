// The project's custom TFLM ops (firmware/kernels/) and their registration in a resolver.
#pragma once

#include "tensorflow/lite/micro/micro_common.h"

namespace nlpool {

constexpr char kWindowSoftmaxPoolName[] = "NLPOOL_WINDOW_SOFTMAX_POOL";
constexpr char kTableSoftmaxName[] = "NLPOOL_TABLE_SOFTMAX";

TFLMRegistration Register_WINDOW_SOFTMAX_POOL();
TFLMRegistration Register_TABLE_SOFTMAX();

// Adds the project's custom ops to a MicroMutableOpResolver (two of its slots).
template <typename Resolver>
TfLiteStatus RegisterCustomOps(Resolver& resolver) {
  static const TFLMRegistration window = Register_WINDOW_SOFTMAX_POOL();
  static const TFLMRegistration softmax = Register_TABLE_SOFTMAX();
  if (resolver.AddCustom(kWindowSoftmaxPoolName, &window) != kTfLiteOk) return kTfLiteError;
  return resolver.AddCustom(kTableSoftmaxName, &softmax);
}

}  // namespace nlpool
