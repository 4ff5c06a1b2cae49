"""Integer sums of MEAN and SUM without per-element index arithmetic, patched into a TFLM tree.

TFLM's reference `ReduceSumImpl` recomputes a multi-index and an output offset for every input
element: about 130 instructions per element on a Cortex-M4, 1.5 M per image for a MobileNetV2's
global average pool. `patches/contiguous_sum.h` adds the rows of a contiguous run of reduced
axes in a plain loop; integer sums are exact in any order, so the results are TFLM's bit for bit
(floating-point sums and non-contiguous axes keep TFLM's loop). `apply_contiguous_sums` copies
the header into the tree and makes `ReduceSumImpl` try it first. The host's TFLM interpreter
keeps the generic loop, so every target-vs-host comparison of a model with MEAN checks it.
"""

import os

from nlpool_keras.firmware.patching import PATCHES, copy_header, patch_file

HEADER = os.path.join(PATCHES, "contiguous_sum.h")
HEADER_IN_TREE = os.path.join("tensorflow", "lite", "kernels", "internal", "nlpool_contiguous_sum.h")
REDUCE_H = os.path.join("tensorflow", "lite", "kernels", "internal", "reference", "reduce.h")
TYPES_INCLUDE = '#include "tensorflow/lite/kernels/internal/types.h"\n'
OWN_INCLUDE = '#include "tensorflow/lite/kernels/internal/nlpool_contiguous_sum.h"\n'
SUM_IMPL = (
    "                          Out* output_data) {\n  auto reducer = [](const Out current, const In in) -> Out {\n"
)
FAST_PATH = (
    "                          Out* output_data) {\n"
    "  if (nlpool::ContiguousSum<In, Out>(input_data, input_dims, input_num_dims, axis,\n"
    "                                     num_axis, output_data)) {\n"
    "    return true;\n"
    "  }\n"
    "  auto reducer = [](const Out current, const In in) -> Out {\n"
)


def apply_contiguous_sums(tree):
    """Patches the TFLM tree at `tree` in place (once, on a freshly laid tree)."""
    copy_header(HEADER, tree, HEADER_IN_TREE)
    patch_file(os.path.join(tree, REDUCE_H), [(TYPES_INCLUDE, TYPES_INCLUDE + OWN_INCLUDE), (SUM_IMPL, FAST_PATH)])
