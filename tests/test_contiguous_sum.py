"""MEAN's and SUM's integer sums in the firmware (`firmware/patches/contiguous_sum.h`, patched into
TFLM's `ReduceSumImpl`) equal NumPy's: compiled with the host's C++ compiler and run on random
shapes, axes, int8 and int16 inputs and int32 starting values near the wrap-around. Axes that
are not one contiguous run, and floating-point sums, are left to TFLM's own loop. (On whole
models the sums are checked wherever a target's outputs are compared with the host
interpreter's, whose TFLM keeps the generic loop.)"""

import os
import subprocess

import numpy as np
import pytest

from nlpool_keras.firmware.reduction import HEADER_IN_TREE, REDUCE_H
from nlpool_keras.firmware.tree import prepare_tree
from tests.conftest import compile_tree_driver

DRIVER = r"""
#include <cstdint>
#include <cstdio>
#include <vector>
#include "tensorflow/lite/kernels/internal/nlpool_contiguous_sum.h"
template <typename In>
void Case(const std::vector<int>& dims, const std::vector<int>& axis, long count, long outputs) {
  std::vector<In> input(count);
  std::vector<int32_t> sums(outputs);
  for (auto& v : input) { long x; std::scanf("%ld", &x); v = static_cast<In>(x); }
  for (auto& v : sums) { long x; std::scanf("%ld", &x); v = static_cast<int32_t>(x); }
  bool done = nlpool::ContiguousSum<In, int32_t>(input.data(), dims.data(), static_cast<int>(dims.size()),
                                                 axis.data(), static_cast<int>(axis.size()), sums.data());
  std::printf("%d", done ? 1 : 0);
  for (auto v : sums) std::printf(" %ld", static_cast<long>(v));
  std::printf("\n");
}
int main() {
  float x = 1.0f, sum = 0.0f;
  int dims[1] = {1}, axis[1] = {0};
  std::printf("%d\n", nlpool::ContiguousSum<float, float>(&x, dims, 1, axis, 1, &sum) ? 1 : 0);
  int bits, ndims, naxis;
  while (std::scanf("%d %d", &bits, &ndims) == 2) {
    std::vector<int> d(ndims);
    long count = 1, outputs;
    for (auto& v : d) { std::scanf("%d", &v); count *= v; }
    std::scanf("%d", &naxis);
    std::vector<int> a(naxis);
    for (auto& v : a) std::scanf("%d", &v);
    std::scanf("%ld", &outputs);
    if (bits == 8) Case<int8_t>(d, a, count, outputs); else Case<int16_t>(d, a, count, outputs);
  }
}
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    return compile_tree_driver(str(tmp_path_factory.mktemp("contiguous_sum")), DRIVER)


def _cases(rng, count):
    cases = []
    for _ in range(count):
        ndims = int(rng.integers(1, 6))
        dims = [int(v) for v in rng.integers(1, 7, ndims)]
        axis = [int(v) for v in rng.permutation(ndims)[: int(rng.integers(1, ndims + 1))]]
        bits = int(rng.choice([8, 16]))
        info = np.iinfo(np.int8 if bits == 8 else np.int16)
        values = rng.integers(info.min, info.max + 1, dims)
        kept = [d for k, d in enumerate(dims) if k not in axis]
        start = rng.integers(-(2**31), 2**31, kept) if rng.random() < 0.7 else np.full(kept, 2**31 - 3)
        cases.append((bits, dims, axis, values, np.asarray(start, np.int64)))
    return cases


def test_the_tree_sums_reductions_with_the_contiguous_loop():
    tree = prepare_tree()
    assert os.path.isfile(os.path.join(tree, HEADER_IN_TREE))
    with open(os.path.join(tree, REDUCE_H)) as f:
        assert f.read().count("nlpool::ContiguousSum<In, Out>(input_data") == 1


def test_contiguous_sums_equal_numpy_and_other_axes_are_left_alone(driver):
    cases = _cases(np.random.default_rng(0), 3000)
    text = ""
    for bits, dims, axis, values, start in cases:
        text += f"{bits} {len(dims)} {' '.join(map(str, dims))} {len(axis)} {' '.join(map(str, axis))} {start.size}\n"
        text += " ".join(map(str, values.ravel())) + "\n" + " ".join(map(str, start.ravel())) + "\n"
    lines = subprocess.run([driver], input=text, capture_output=True, text=True, check=True).stdout.split("\n")
    assert lines[0] == "0"  # a floating-point sum keeps TFLM's order
    contiguous = 0
    assert len(lines) == len(cases) + 2 and lines[-1] == ""  # the float case, one line per case
    for (_, dims, axis, values, start), line in zip(cases, lines[1:-1], strict=True):
        done, *sums = (int(v) for v in line.split())
        is_run = max(axis) - min(axis) + 1 == len(axis)
        assert done == is_run, (dims, axis)
        expected = start + values.sum(axis=tuple(axis), dtype=np.int64) if is_run else start
        wrapped = (expected.ravel() + 2**31) % 2**32 - 2**31  # int32 addition wraps, as TFLM's does
        assert sums == wrapped.tolist(), (dims, axis)
        contiguous += is_run
    assert contiguous > 1000 and len(cases) - contiguous > 300  # both kinds of axes were tried
