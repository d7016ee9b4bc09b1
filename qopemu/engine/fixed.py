"""QUA number formats: 32-bit integers and 4.28 fixed point, with the platform's wrap-around.

Source: QM docs, Guides/variables.md ("Variables in QUA"):
- int is 32 bit and *wraps around* on overflow (2**31-1 + 1 -> -2**31);
- fixed is 4.28 (4 integer bits including the sign, 28 fractional bits): range [-8, 8) in steps of 2**-28, and an
  overflowing value wraps modulo 16: ((x + 8) % 16) - 8 (8.0 -> -8.0, 9.0 -> -7.0, 100.0 -> 4.0);
- casting int -> fixed only gives the expected result for ints in [-8, 7] (it wraps like any overflow);
- a bool is true for any non-zero value;
- unsafe_cast_fixed / unsafe_cast_int reinterpret the 32 bits (x * 2**-28 / x * 2**28).
- Math.div on two ints assigned to an int gives floor(x / y) (qm.qua.lib.Math.div docstring).

Representation: the engine keeps a fixed value as its raw two's-complement int32 (value * 2**28), so every
operation is exact integer arithmetic, as in the hardware ALU. Rules the docs leave open, chosen here and applied
everywhere (compiler constant folding and runtime share these functions):
- products and quotients keep the low 28 fractional bits by an arithmetic shift, i.e. they round towards -inf
  (floor), the behaviour of a shift in a fixed-point datapath; the result then wraps like any overflow;
- fixed -> int truncates towards -inf (the integer bits of the raw word: raw >> 28);
- float literals -> fixed round to the nearest step, then wrap (the QUA compiler converts the literal once).
"""

from __future__ import annotations

import math

FRAC_BITS = 28
ONE = 1 << FRAC_BITS  # raw value of fixed 1.0
SCALE = 1.0 / ONE  # raw -> float
_MASK = 0xFFFFFFFF
_SIGN = 0x80000000

# Python source snippets the code generator inlines on hot paths (same rule as `wrap`).
WRAP_SRC = "((({}) + 0x80000000 & 0xFFFFFFFF) - 0x80000000)"


def wrap(x: int) -> int:
    """Two's-complement int32 wrap-around (the same rule serves raw fixed words)."""
    return ((x + _SIGN) & _MASK) - _SIGN


def fixed_from_float(x: float) -> int:
    """A float literal as a raw fixed word: nearest step, then wrap modulo 16."""
    if math.isnan(x):
        return 0
    if math.isinf(x):
        return wrap(-_SIGN if x < 0 else _SIGN - 1)
    return wrap(round(x * ONE))


def fixed_to_float(raw: int) -> float:
    return raw * SCALE


def fixed_to_int(raw: int) -> int:
    return raw >> FRAC_BITS


def fixed_div(a: int, b: int) -> int:
    """a / b for two fixed words; caller checks b != 0."""
    return wrap((a << FRAC_BITS) // b)


def msb(x: int, is_fixed: bool) -> int:
    """Math.msb: the index of the top bit of |word| counted from the fixed point, floor(log2|x|) for a fixed.

    The platform applies that one rule to the 32-bit word whatever its type, so an int gives floor(log2|x|) - 28:
    py-qua-tools' VoltageGateSequence (run on hardware) computes `1 << (29 + Math.msb(n))` as the power of two
    above the int n. msb(0) is the documented value (qm.qua.lib.Math.MSB docstring): 0 for an int, -28 for a fixed.
    See docs/engine.md.
    """
    magnitude = abs(x)
    if magnitude == 0:
        return -FRAC_BITS if is_fixed else 0
    return magnitude.bit_length() - 1 - FRAC_BITS
