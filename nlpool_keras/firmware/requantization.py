"""Per-channel requantization multipliers in integer arithmetic, patched into a TFLM tree.

TFLM computes each convolution (and per-channel fully connected) output channel's multiplier as
`QuantizeMultiplier(double(input_scale) * double(filter_scale) / double(output_scale))` when a
model's tensors are allocated. On a core without a double-precision FPU that is emulated in
software, about a thousand instructions per channel: most of a patch schedule's set-up, which
allocates every phase model's tensors for every image. `patches/exact_multiplier.h` computes
the same multiplier and shift bit for bit from the floats' integer fields (see its header
comment); `apply_integer_requantization` copies it into the tree and makes the two per-channel
loops call it. The host's TFLM interpreter keeps the double arithmetic, so every target-vs-host
comparison checks the equality.
"""

import os

from nlpool_keras.firmware.patching import PATCHES, copy_header, patch_file

HEADER = os.path.join(PATCHES, "exact_multiplier.h")
HEADER_IN_TREE = os.path.join("tensorflow", "lite", "kernels", "internal", "nlpool_exact_multiplier.h")
QUANTIZATION_INCLUDE = '#include "tensorflow/lite/kernels/internal/quantization_util.h"\n'
OWN_INCLUDE = '#include "tensorflow/lite/kernels/internal/nlpool_exact_multiplier.h"\n'


def _double_loop_body(indent, scale):
    pad = " " * indent
    return (
        f"{pad}const double filter_scale = static_cast<double>({scale});\n"
        f"{pad}const double effective_output_scale = static_cast<double>(input_scale) *\n"
        f"{pad}{' ' * 38}filter_scale /\n"
        f"{pad}{' ' * 38}static_cast<double>(output_scale);\n"
        f"{pad}int32_t significand;\n"
        f"{pad}int channel_shift;\n"
        f"{pad}QuantizeMultiplier(effective_output_scale, &significand, &channel_shift);\n"
    )


def _integer_loop_body(indent, scale):
    pad = " " * indent
    return (
        f"{pad}int32_t significand;\n"
        f"{pad}int channel_shift;\n"
        f"{pad}nlpool::QuantizeScaleRatio(input_scale, {scale}, output_scale, &significand, &channel_shift);\n"
    )


# file in the tree -> (indent of the loop body, name of the channel's filter scale)
PER_CHANNEL_LOOPS = {
    os.path.join("tensorflow", "lite", "kernels", "kernel_util.cc"): (4, "scale"),
    os.path.join("tensorflow", "lite", "micro", "kernels", "fully_connected_common.cc"): (6, "scale"),
}


def apply_integer_requantization(tree):
    """Patches the TFLM tree at `tree` in place (once, on a freshly laid tree)."""
    copy_header(HEADER, tree, HEADER_IN_TREE)
    for relative, (indent, scale) in PER_CHANNEL_LOOPS.items():
        patch_file(
            os.path.join(tree, relative),
            [
                (QUANTIZATION_INCLUDE, QUANTIZATION_INCLUDE + OWN_INCLUDE),
                (_double_loop_body(indent, scale), _integer_loop_body(indent, scale)),
            ],
        )
