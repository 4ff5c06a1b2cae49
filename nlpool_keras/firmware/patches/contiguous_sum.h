// Integer sums over a contiguous run of axes, for TFLM's reduction kernels.
//
// TFLM's reference `ReduceSumImpl` (under MEAN and SUM) walks the input with a multi-index and
// recomputes the output offset of every element: about 130 instructions per int8 element on a
// Cortex-M4, 1.5 M for a MobileNetV2's global average pool over 3 x 3 x 1280. When the reduced
// axes are one contiguous run, the input is (outer, reduced, inner) in row-major order and the
// output (outer, inner); `ContiguousSum` adds the rows of each outer slice into the output in a
// plain loop. Integer addition wraps modulo 2^32 and is exact in any order, so the sums are
// TFLM's, bit for bit. Floating-point sums keep TFLM's order (ContiguousSum returns false).
//
//   // dims (1, 3, 3, 1280), axis {1, 2}: output (1, 1280), accumulated onto its values
//   if (!nlpool::ContiguousSum<int8_t, int32_t>(in, dims, 4, axis, 2, sums)) { /* generic */ }

#ifndef NLPOOL_CONTIGUOUS_SUM_H_
#define NLPOOL_CONTIGUOUS_SUM_H_

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace nlpool {

// Adds `input` (`dims`, `num_dims` of them) over the distinct axes `axis` (`num_axis` of them,
// each in 0..num_dims - 1) onto `output`, which holds the non-reduced axes in order. Returns
// false, touching nothing, when the axes are not one contiguous run or Out is not an integer.
template <typename In, typename Out>
inline typename std::enable_if<std::is_integral<Out>::value, bool>::type ContiguousSum(
    const In* input, const int* dims, int num_dims, const int* axis, int num_axis, Out* output) {
  if (num_axis < 1) return false;
  int first = num_dims, last = -1;
  for (int k = 0; k < num_axis; ++k) {
    first = axis[k] < first ? axis[k] : first;
    last = axis[k] > last ? axis[k] : last;
  }
  if (last - first + 1 != num_axis) return false;
  size_t outer = 1, reduced = 1, inner = 1;
  for (int d = 0; d < num_dims; ++d) {
    const size_t size = static_cast<size_t>(dims[d]);
    if (d < first) {
      outer *= size;
    } else if (d <= last) {
      reduced *= size;
    } else {
      inner *= size;
    }
  }
  using Wide = typename std::make_unsigned<Out>::type;  // wraps as TFLM's sum does, defined
  for (size_t o = 0; o < outer; ++o) {
    const In* slice = input + o * reduced * inner;
    Out* sums = output + o * inner;
    if (inner == 1) {
      Wide sum = static_cast<Wide>(sums[0]);
      for (size_t r = 0; r < reduced; ++r) sum += static_cast<Wide>(static_cast<Out>(slice[r]));
      sums[0] = static_cast<Out>(sum);
      continue;
    }
    for (size_t r = 0; r < reduced; ++r) {
      const In* row = slice + r * inner;
      for (size_t i = 0; i < inner; ++i) {
        sums[i] = static_cast<Out>(static_cast<Wide>(sums[i]) + static_cast<Wide>(static_cast<Out>(row[i])));
      }
    }
  }
  return true;
}

template <typename In, typename Out>
inline typename std::enable_if<!std::is_integral<Out>::value, bool>::type ContiguousSum(
    const In*, const int*, int, const int*, int, Out*) {
  return false;
}

}  // namespace nlpool

#endif  // NLPOOL_CONTIGUOUS_SUM_H_
