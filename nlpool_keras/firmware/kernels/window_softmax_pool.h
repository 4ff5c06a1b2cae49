// The window softmax pool of the learned poolings in integers: for each window of an int8 map x,
// the mean of x weighted by a softmax of the window's logits, with the weights read from a table
// indexed by the int8 tensor z the logits are computed from (the table holds
// W * exp(logit(z) - max logit), e.g. logit(z) = gate_scale * sigmoid(z)):
//
//   num = sum (x - x_zero) * table[z + 128],  den = sum table[z + 128]     (over the window)
//   r = round_half_away(num * 256 / den)                                   (x's steps / 256)
//   y = clamp(y_zero + ((r * multiplier + 2^(shift - 1)) >> shift), -128, 127)
//
// z may be coarser than x: x's position (row, col) reads z at ((row + offset_top) / repeat_h,
// (col + offset_left) / repeat_w), each z cell repeated over repeat_h x repeat_w positions of x
// (a self-attentive layer's token grid; 1, 1 and 0, 0 for a map of x's size). Positions outside
// x (pad_top, pad_left, and past the bottom and right edges) take no part, as in an average
// pool. The export keeps |num| * 512 below 2^31 by the table's largest weight W, and every entry
// >= 1, so den > 0. Shapes: x (H, W, C), z (Hz, Wz, C), y (Ho, Wo, C), channels last.
// No TFLM header: the same code runs in the firmware, the host interpreter and the host tests.
#pragma once

#include <cstdint>

namespace nlpool {

struct WindowSoftmaxPoolParams {
  int32_t pool_height, pool_width, pad_top, pad_left;
  int32_t x_zero, y_zero, multiplier, shift;
  int32_t repeat_height, repeat_width, offset_top, offset_left;
  const int32_t* table;  // 256 weights, indexed by z + 128
};

// The int32 values before the table in the op's parameter tensor, and the largest window.
constexpr int kWindowSoftmaxPoolHeader = 12;
constexpr int kWindowSoftmaxPoolMaxWindow = 16;

inline WindowSoftmaxPoolParams WindowSoftmaxPoolParamsFrom(const int32_t* v) {
  return {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v + kWindowSoftmaxPoolHeader};
}

// The parameters one output needs, as values: int8 stores may alias a struct's fields, so a loop
// that writes outputs would reload them from memory each time.
struct WindowSoftmaxPoolRescale {
  int32_t x_zero, y_zero, multiplier, shift;
};

// The export gives shift >= 32, so the 64-bit product's high word, shifted by shift - 32, is
// (r * multiplier + 2^(shift - 1)) >> shift.
inline int8_t WindowSoftmaxPoolOne(int32_t num, int32_t den, WindowSoftmaxPoolRescale q) {
  const int32_t twice = num * 512;
  const int32_t r = (twice + (num >= 0 ? den : -den)) / (2 * den);
  const int64_t scaled = static_cast<int64_t>(r) * q.multiplier + (int64_t{1} << (q.shift - 1));
  const int32_t y = q.y_zero + (static_cast<int32_t>(scaled >> 32) >> (q.shift - 32));
  return static_cast<int8_t>(y < -128 ? -128 : (y > 127 ? 127 : y));
}

// The first and one-past-last positions of window `index` along an axis of `size`.
inline void WindowSpan(int index, int pool, int pad, int size, int* first, int* last) {
  const int start = index * pool - pad;
  *first = start < 0 ? 0 : start;
  *last = start + pool > size ? size : start + pool;
}

// Returns false (writing nothing) for a window of more than kWindowSoftmaxPoolMaxWindow elements.
inline bool WindowSoftmaxPool(const int8_t* x, int height, int width, int channels, const int8_t* z,
                              int z_width, int out_height, int out_width, const WindowSoftmaxPoolParams& p,
                              int8_t* y) {
  if (p.pool_height * p.pool_width > kWindowSoftmaxPoolMaxWindow) return false;
  const int8_t* xs[kWindowSoftmaxPoolMaxWindow];
  const int8_t* zs[kWindowSoftmaxPoolMaxWindow];
  const int32_t* table = p.table + 128;
  const WindowSoftmaxPoolRescale q = {p.x_zero, p.y_zero, p.multiplier, p.shift};
  for (int oy = 0; oy < out_height; ++oy) {
    int top, bottom;
    WindowSpan(oy, p.pool_height, p.pad_top, height, &top, &bottom);
    for (int ox = 0; ox < out_width; ++ox) {
      int left, right;
      WindowSpan(ox, p.pool_width, p.pad_left, width, &left, &right);
      int count = 0;
      for (int row = top; row < bottom; ++row) {
        const int z_row = (row + p.offset_top) / p.repeat_height;
        for (int col = left; col < right; ++col, ++count) {
          xs[count] = x + (row * width + col) * channels;
          zs[count] = z + (z_row * z_width + (col + p.offset_left) / p.repeat_width) * channels;
        }
      }
      int8_t* out = y + (oy * out_width + ox) * channels;
      if (count == 4) {  // a window of 4 (a whole 2 x 2 one, the common case): offsets from one base
        const int8_t* x0 = xs[0];
        const int8_t* z0 = zs[0];
        const int dx1 = xs[1] - x0, dx2 = xs[2] - x0, dx3 = xs[3] - x0;
        const int dz1 = zs[1] - z0, dz2 = zs[2] - z0, dz3 = zs[3] - z0;
        for (int c = 0; c < channels; ++c) {
          const int32_t w0 = table[z0[c]], w1 = table[z0[c + dz1]], w2 = table[z0[c + dz2]];
          const int32_t w3 = table[z0[c + dz3]];
          const int32_t num = (x0[c] - q.x_zero) * w0 + (x0[c + dx1] - q.x_zero) * w1 +
                              (x0[c + dx2] - q.x_zero) * w2 + (x0[c + dx3] - q.x_zero) * w3;
          out[c] = WindowSoftmaxPoolOne(num, w0 + w1 + w2 + w3, q);
        }
        continue;
      }
      for (int c = 0; c < channels; ++c) {
        int32_t num = 0, den = 0;
        for (int e = 0; e < count; ++e) {
          const int32_t w = table[zs[e][c]];
          num += (xs[e][c] - q.x_zero) * w;
          den += w;
        }
        out[c] = WindowSoftmaxPoolOne(num, den, q);
      }
    }
  }
  return true;
}

}  // namespace nlpool
