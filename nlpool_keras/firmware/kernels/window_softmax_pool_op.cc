// NLPOOL_WINDOW_SOFTMAX_POOL, a TFLM custom op running nlpool::WindowSoftmaxPool.
//
// Inputs: 0 x int8 (1, H, W, C); 1 z int8 (1, Hz, Wz, C), the logits' int8 source; 2 int32
// parameters (kWindowSoftmaxPoolHeader values, then the 256-entry table; window_softmax_pool.h).
// Output: 0 y int8 (1, Ho, Wo, C). The op reads its tensors through TfLiteContext's
// GetEvalTensor only.
#include "custom_ops.h"

#include "tensorflow/lite/c/common.h"
#include "window_softmax_pool.h"

namespace nlpool {
namespace {

TfLiteEvalTensor* Tensor(TfLiteContext* context, const TfLiteIntArray* indices, int i) {
  return context->GetEvalTensor(context, indices->data[i]);
}

bool IsMap(const TfLiteEvalTensor* t, TfLiteType type) {
  return t != nullptr && t->type == type && t->dims->size == 4 && t->dims->data[0] == 1;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  if (node->inputs->size != 3 || node->outputs->size != 1) return kTfLiteError;
  const TfLiteEvalTensor* x = Tensor(context, node->inputs, 0);
  const TfLiteEvalTensor* z = Tensor(context, node->inputs, 1);
  const TfLiteEvalTensor* params = Tensor(context, node->inputs, 2);
  const TfLiteEvalTensor* y = Tensor(context, node->outputs, 0);
  if (!IsMap(x, kTfLiteInt8) || !IsMap(z, kTfLiteInt8) || !IsMap(y, kTfLiteInt8)) return kTfLiteError;
  if (z->dims->data[3] != x->dims->data[3] || y->dims->data[3] != x->dims->data[3]) return kTfLiteError;
  if (params == nullptr || params->type != kTfLiteInt32 || params->dims->size != 1 ||
      params->dims->data[0] != kWindowSoftmaxPoolHeader + 256) {
    return kTfLiteError;
  }
  const WindowSoftmaxPoolParams p = WindowSoftmaxPoolParamsFrom(params->data.i32);
  const bool fits = p.pool_height * p.pool_width <= kWindowSoftmaxPoolMaxWindow && p.repeat_height > 0 &&
                    p.repeat_width > 0 && p.shift >= 32 && p.shift <= 62 &&
                    (x->dims->data[1] - 1 + p.offset_top) / p.repeat_height < z->dims->data[1] &&
                    (x->dims->data[2] - 1 + p.offset_left) / p.repeat_width < z->dims->data[2];
  return fits ? kTfLiteOk : kTfLiteError;
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* x = Tensor(context, node->inputs, 0);
  const TfLiteEvalTensor* z = Tensor(context, node->inputs, 1);
  const TfLiteEvalTensor* params = Tensor(context, node->inputs, 2);
  TfLiteEvalTensor* y = Tensor(context, node->outputs, 0);
  const bool done = WindowSoftmaxPool(x->data.int8, x->dims->data[1], x->dims->data[2], x->dims->data[3],
                                      z->data.int8, z->dims->data[2], y->dims->data[1], y->dims->data[2],
                                      WindowSoftmaxPoolParamsFrom(params->data.i32), y->data.int8);
  return done ? kTfLiteOk : kTfLiteError;
}

}  // namespace

TFLMRegistration Register_WINDOW_SOFTMAX_POOL() {
  return {nullptr, nullptr, Prepare, Eval, nullptr, 0, nullptr};
}

}  // namespace nlpool
