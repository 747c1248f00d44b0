/* half.h - IEEE binary16 <-> binary32 conversions on the host, in plain C (cuda_fp16.h is C++ on
 * the host side): for uploading fp32 weights as fp16 and for the GPU tests. Round to nearest
 * even, overflow to infinity, subnormals kept, NaN kept a (quiet) NaN. */
#ifndef SC_HALF_H
#define SC_HALF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t sc_half_from_float(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t exp = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (exp == 0xffu) /* inf or NaN */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0u));
    const int e = (int)exp - 127 + 15; /* biased half exponent */
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal half: value = h · 2^-24 with h = (1.man · 2^23) >> (14 - e) */
        if (e < -10)
            return sign;
        const uint32_t m = man | 0x800000u;
        const int shift = 14 - e;
        uint32_t h = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (h & 1u)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13);
    const uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* a carry out of the mantissa bumps the exponent, up to infinity: still correct */
    return (uint16_t)(sign | h);
}

static inline float sc_half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t x;
    if (exp == 0) {
        const float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    if (exp == 31)
        x = sign | 0x7f800000u | (man << 13);
    else
        x = sign | ((exp + 112u) << 23) | (man << 13);
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

#endif
