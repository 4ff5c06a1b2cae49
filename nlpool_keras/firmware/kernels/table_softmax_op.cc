// NLPOOL_TABLE_SOFTMAX, a TFLM custom op running nlpool::TableSoftmax over the last axis.
//
// Inputs: 0 x int8 (..., L); 1 int32 table (256, table_softmax.h). Output: 0 y int16 (..., L),
// scale 1/32768, zero point 0. The op reads its tensors through TfLiteContext's GetEvalTensor only.
#include "table_softmax.h"

#include "tensorflow/lite/c/common.h"
#include "custom_ops.h"

namespace nlpool {
namespace {

TfLiteEvalTensor* Tensor(TfLiteContext* context, const TfLiteIntArray* indices, int i) {
  return context->GetEvalTensor(context, indices->data[i]);
}

int Elements(const TfLiteEvalTensor* t) {
  int count = 1;
  for (int d = 0; d < t->dims->size; ++d) count *= t->dims->data[d];
  return count;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  if (node->inputs->size != 2 || node->outputs->size != 1) return kTfLiteError;
  const TfLiteEvalTensor* x = Tensor(context, node->inputs, 0);
  const TfLiteEvalTensor* table = Tensor(context, node->inputs, 1);
  const TfLiteEvalTensor* y = Tensor(context, node->outputs, 0);
  if (x == nullptr || y == nullptr || table == nullptr || x->type != kTfLiteInt8 || y->type != kTfLiteInt16 ||
      table->type != kTfLiteInt32 || Elements(table) != kTableSoftmaxEntries || x->dims->size < 1 ||
      Elements(x) != Elements(y) || x->dims->data[x->dims->size - 1] > 32768) {
    return kTfLiteError;
  }
  return kTfLiteOk;
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* x = Tensor(context, node->inputs, 0);
  const TfLiteEvalTensor* table = Tensor(context, node->inputs, 1);
  TfLiteEvalTensor* y = Tensor(context, node->outputs, 0);
  const int length = x->dims->data[x->dims->size - 1];
  TableSoftmax(x->data.int8, Elements(x) / length, length, table->data.i32, y->data.i16);
  return kTfLiteOk;
}

}  // namespace

TFLMRegistration Register_TABLE_SOFTMAX() { return {nullptr, nullptr, Prepare, Eval, nullptr, 0, nullptr}; }

}  // namespace nlpool
