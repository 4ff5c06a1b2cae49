// The requantization multiplier of a convolution's output channel, in integer arithmetic.
//
// TFLM's PopulateConvolutionQuantizationParams computes, for each output channel,
//     QuantizeMultiplier(double(input_scale) * double(filter_scale) / double(output_scale))
// in double precision, which a core without a double-precision FPU (Cortex-M0..M4, M33)
// emulates in software: about a thousand instructions per channel, paid by every model's
// AllocateTensors. QuantizeScaleRatio returns the same multiplier and shift, bit for bit,
// from the three floats' integer fields: the double product of two floats is exact (48
// significant bits), the double quotient is the exact quotient rounded to nearest-even at 53
// bits, and QuantizeMultiplier then rounds that to 31 bits, half away from zero. Both
// roundings are done here on an integer quotient that carries two bits beyond the 53 and a
// sticky bit, found by long division in base 256 with 32-bit divisions only (about 120
// instructions on a Cortex-M4 against about 1,000 for the soft-float double arithmetic).
// Non-normal inputs (zero, subnormal, infinite, NaN) take the double expression as it was.
#ifndef NLPOOL_EXACT_MULTIPLIER_H_
#define NLPOOL_EXACT_MULTIPLIER_H_

#include <stdint.h>
#include <string.h>

#include "tensorflow/lite/kernels/internal/quantization_util.h"

namespace nlpool {

// A positive normal float as mantissa * 2^exponent, mantissa in [2^23, 2^24); false otherwise.
inline bool SplitFloat(float value, uint32_t* mantissa, int* exponent) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof(bits));
  const uint32_t biased = (bits >> 23) & 0xff;
  if ((bits >> 31) != 0 || biased == 0 || biased == 0xff) return false;
  *mantissa = (bits & 0x7fffff) | 0x800000;
  *exponent = static_cast<int>(biased) - 150;
  return true;
}

inline void QuantizeScaleRatio(float input_scale, float filter_scale, float output_scale,
                               int32_t* multiplier, int* shift) {
  uint32_t ma, mb, mc;
  int ea, eb, ec;
  if (!SplitFloat(input_scale, &ma, &ea) || !SplitFloat(filter_scale, &mb, &eb) ||
      !SplitFloat(output_scale, &mc, &ec)) {
    tflite::QuantizeMultiplier(static_cast<double>(input_scale) * static_cast<double>(filter_scale) /
                                   static_cast<double>(output_scale),
                               multiplier, shift);
    return;
  }
  // quotient = floor(ma * mb * 2^32 / mc), long division in base 256 with 32-bit divisions only
  // (remainder < mc < 2^24, so a remainder and the next byte fit 32 bits): the dividend's top 24
  // bits give the first quotient bit, each of its three low bytes and four zero bytes 8 more.
  // ma * mb is in [2^46, 2^48) and mc in [2^23, 2^24), so the quotient has 55 to 57 bits.
  const uint64_t dividend = static_cast<uint64_t>(ma) * mb;
  const uint32_t top = static_cast<uint32_t>(dividend >> 24), low = static_cast<uint32_t>(dividend) & 0xffffff;
  uint32_t quotient_high = 0, quotient_low = top / mc;
  uint32_t remainder = top - quotient_low * mc;
  const uint32_t bytes[7] = {(low >> 16) & 0xff, (low >> 8) & 0xff, low & 0xff, 0, 0, 0, 0};
#pragma GCC unroll 7
  for (const uint32_t next : bytes) {
    const uint32_t current = (remainder << 8) | next;
    const uint32_t digit = current / mc;
    remainder = current - digit * mc;
    quotient_high = (quotient_high << 8) | (quotient_low >> 24);
    quotient_low = (quotient_low << 8) | digit;
  }
  uint64_t quotient = (static_cast<uint64_t>(quotient_high) << 32) | quotient_low;
  int exponent = ea + eb - ec - 32;  // ma * mb / mc = (quotient + remainder / mc) * 2^-32
  bool sticky = remainder != 0;
  while (quotient >= (1ULL << 55)) {  // keep 55 bits: 53, a guard bit and one more
    sticky |= (quotient & 1) != 0;
    quotient >>= 1;
    ++exponent;
  }
  // Round to nearest-even at 53 bits: the double quotient, mantissa53 * 2^exponent.
  uint64_t mantissa53 = quotient >> 2;
  exponent += 2;
  const bool guard = (quotient & 2) != 0;
  if (guard && (sticky || (quotient & 1) != 0 || (mantissa53 & 1) != 0)) {
    if (++mantissa53 == (1ULL << 53)) {
      mantissa53 >>= 1;
      ++exponent;
    }
  }
  // QuantizeMultiplier: frexp gives mantissa53 / 2^53 in [0.5, 1) and shift exponent + 53;
  // round(q * 2^31) rounds half away from zero, which for a positive q is adding half and truncating.
  int64_t q_fixed = static_cast<int64_t>((mantissa53 + (1ULL << 21)) >> 22);
  *shift = exponent + 53;
  if (q_fixed == (1LL << 31)) {
    q_fixed /= 2;
    ++*shift;
  }
  if (*shift < -31) {
    *shift = 0;
    q_fixed = 0;
  }
#if TFLITE_SINGLE_ROUNDING
  if (*shift > 30) {
    *shift = 30;
    q_fixed = (1LL << 31) - 1;
  }
#endif
  *multiplier = static_cast<int32_t>(q_fixed);
}

}  // namespace nlpool

#endif  // NLPOOL_EXACT_MULTIPLIER_H_
