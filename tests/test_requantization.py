"""The firmware's integer requantization multipliers (`firmware/patches/exact_multiplier.h`, patched
into the TFLM tree) equal TFLM's double-precision ones bit for bit: compiled with the host's C++
compiler and compared with a Python reference of `QuantizeMultiplier(double(a) * double(b) /
double(c))` on random scales, on exact ties of the 31-bit rounding, and on quotients that only
the 53-bit rounding moves onto such a tie. (The models' own multipliers are checked wherever a
target's outputs are compared with the host interpreter's, whose TFLM keeps the double form.)"""

import math
import os
import random
import struct
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from nlpool_keras.firmware.requantization import HEADER_IN_TREE, PER_CHANNEL_LOOPS
from nlpool_keras.firmware.tree import MAKE_DIR, prepare_tree
from tests.conftest import compile_tree_driver

DRIVER = r"""
#include <cstdio>
#include <cstring>
#include "tensorflow/lite/kernels/internal/nlpool_exact_multiplier.h"
int main() {
  unsigned bits[3];
  while (std::scanf("%x %x %x", &bits[0], &bits[1], &bits[2]) == 3) {
    float scales[3];
    std::memcpy(scales, bits, sizeof(scales));
    int multiplier, shift;
    nlpool::QuantizeScaleRatio(scales[0], scales[1], scales[2], &multiplier, &shift);
    std::printf("%d %d\n", multiplier, shift);
  }
}
"""


def reference(a, b, c):
    """TFLM's QuantizeMultiplier of the double quotient; Python's float is IEEE double."""
    value = float(a) * float(b) / float(c)
    if value == 0.0:
        return 0, 0
    q, shift = math.frexp(value)
    q_fixed = math.floor(q * 2**31 + 0.5)  # std::round of a positive value: half away from zero
    if q_fixed == 2**31:
        q_fixed, shift = q_fixed // 2, shift + 1
    if shift < -31:
        q_fixed, shift = 0, 0
    return q_fixed, shift


def _float(mantissa, exponent):
    return np.float32(math.ldexp(mantissa, exponent))


def _double_rounded_ties(count, rng):
    """(a, b, c) whose exact quotient lies a few units of 2^-60 (relative) off a tie of the
    31-bit rounding: ma * mb * 2^s = mc * K + d with K odd of 32 bits and 0 < |d| <= 3, so only
    the double's 53-bit rounding puts the quotient on the tie."""
    found = []
    while len(found) < count:
        mc = rng.randrange(2**23 + 1, 2**24, 2)
        ma = rng.randrange(2**23, 2**24)
        d = rng.choice([-3, -2, -1, 1, 2, 3])
        for s in (7, 8, 9):
            if math.gcd(ma << s, mc) != 1:
                break
            mb = d * pow(ma << s, -1, mc) % mc
            mb += mc * ((2**23 - mb + mc - 1) // mc) if mb < 2**23 else 0
            k, rest = divmod((ma * mb << s) - d, mc)
            if mb < 2**24 and rest == 0 and k % 2 and k.bit_length() == 32:
                found.append((_float(ma, -30), _float(mb, -20), _float(mc, -23)))
                break
    return found


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    def library(tree):  # QuantizeMultiplier's double form, which the header falls back on
        internal = os.path.join(tree, "tensorflow", "lite", "kernels", "internal", "quantization_util.cc")
        return ["-I", os.path.join(tree, MAKE_DIR, "downloads", "gemmlowp"), internal]

    return compile_tree_driver(str(tmp_path_factory.mktemp("requantization")), DRIVER, library)


def _run(driver, triples):
    text = "".join(" ".join(f"{struct.unpack('<I', struct.pack('<f', v))[0]:08x}" for v in t) + "\n" for t in triples)
    out = subprocess.run([driver], input=text, capture_output=True, text=True, check=True).stdout.split("\n")
    return [tuple(int(v) for v in line.split()) for line in out if line]


def test_the_tree_computes_per_channel_multipliers_with_the_integer_form():
    tree = prepare_tree()
    assert os.path.isfile(os.path.join(tree, HEADER_IN_TREE))
    for relative in PER_CHANNEL_LOOPS:
        with open(os.path.join(tree, relative)) as f:
            text = f.read()
        assert "nlpool::QuantizeScaleRatio(input_scale, scale, output_scale" in text
        assert "QuantizeMultiplier(effective_output_scale" not in text


def test_integer_multipliers_equal_the_double_ones(driver):
    rng = random.Random(0)
    exponents = np.random.default_rng(0).uniform(-40.0, 10.0, size=(60000, 3))
    log_uniform = [tuple(np.float32(2.0**e) for e in row) for row in exponents]
    small = [  # short mantissas: exact quotients and exact ties of the 31-bit rounding
        (_float(rng.randrange(1, 2**16, 2), -20), _float(rng.randrange(1, 2**16, 2), -10), _float(1, shift))
        for shift in rng.choices(range(-20, 20), k=20000)
    ]
    ties = _double_rounded_ties(200, rng)
    edges = [  # zero, subnormal and huge scales take the double expression; a shift below -31 flushes to zero
        (np.float32(0.0), np.float32(0.5), np.float32(0.25)),
        (np.float32(1e-45), np.float32(1.0), np.float32(3.0)),
        (np.float32(1e-30), np.float32(1e-30), np.float32(1e30)),
        (np.float32(3e38), np.float32(3e38), np.float32(1e-38)),
        (np.float32(1.0), np.float32(1.0), np.float32(1.0)),
    ]
    triples = log_uniform + small + ties + edges
    got = _run(driver, triples)
    expected = [reference(*t) for t in triples]
    wrong = [(t, g, e) for t, g, e in zip(triples, got, expected, strict=True) if g != e]
    assert not wrong, wrong[:5]
    rounded_onto_tie = [t for t in ties if _rounded_onto_tie(*t)]
    assert len(rounded_onto_tie) >= len(ties) // 2  # the cases the 53-bit rounding decides are there


def _rounded_onto_tie(a, b, c):
    value = float(a) * float(b) / float(c)
    scaled = math.frexp(value)[0] * 2**31
    exact = Fraction(float(a)) * Fraction(float(b)) / Fraction(float(c))
    return scaled - math.floor(scaled) == 0.5 and Fraction(value) != exact
