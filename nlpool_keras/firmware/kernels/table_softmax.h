// A softmax over the last axis of int8 rows, with the exponentials read from a table: for a row
// x of length L with maximum m,
//
//   w_j = table[m - x_j]          (table[d] = round(2^16 * exp(-beta * s_x * d)), table[0] = 2^16)
//   S = the sum of the w_j in one pass: at each new maximum m' > m the sum so far becomes
//       round(S * table[m' - m] / 2^16) + 2^16
//   y_j = min(32767, round(2^15 * w_j / S))
//
// y is int16 with scale 1/32768 and zero point 0, TFLM's int16 SOFTMAX output. One 64-bit
// division per row (a reciprocal), then a multiply and a shift per element. Rows of up to 2^15
// entries keep the sum in 32 bits. No TFLM header: the firmware, the host interpreter and the
// host tests run this code.
#pragma once

#include <cstdint>

namespace nlpool {

constexpr int kTableSoftmaxEntries = 256;
constexpr uint32_t kTableSoftmaxOne = 1u << 16;  // table[0], the weight of a row's maximum

inline void TableSoftmax(const int8_t* x, int rows, int length, const int32_t* table, int16_t* y) {
  for (int r = 0; r < rows; ++r, x += length, y += length) {
    // the maximum and the sum in one pass: at each new maximum the sum so far is rescaled to it
    int32_t top = x[0];
    uint32_t sum = kTableSoftmaxOne;
    for (int j = 1; j < length; ++j) {
      const int32_t v = x[j];
      if (v > top) {
        const uint64_t rescaled = uint64_t{sum} * static_cast<uint32_t>(table[v - top]) + (1u << 15);
        sum = static_cast<uint32_t>(rescaled >> 16) + kTableSoftmaxOne;
        top = v;
      } else {
        sum += static_cast<uint32_t>(table[top - v]);
      }
    }
    const int32_t* weight = table + top;  // weight[-x] = table[top - x]
    // 2^46 / sum, rounded: below 2^31 as sum >= 2^16, so one 32 x 32 -> 64-bit multiply
    const uint32_t reciprocal = static_cast<uint32_t>(((uint64_t{1} << 46) + sum / 2) / sum);
    for (int j = 0; j < length; ++j) {
      const uint32_t w = static_cast<uint32_t>(weight[-x[j]]);  // 0 .. 2^16
      const uint32_t scaled = static_cast<uint32_t>((uint64_t{w} * reciprocal + (uint64_t{1} << 30)) >> 31);
      y[j] = static_cast<int16_t>(scaled > 32767 ? 32767 : scaled);
    }
  }
}

}  // namespace nlpool
