//===- Crc32c.cpp - CRC-32C of KV files' data ------------------------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The checksum saves write and restores check (KvFile.cpp): SSE 4.2's crc32
// instruction in three interleaved chains where the CPU has it, a table a
// byte at a time elsewhere.
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/KvFile.h"

#include <cstring>

using namespace attnc;
using namespace attnc::kv;

namespace {
/// CRC-32C, a byte at a time (any CPU).
uint32_t crc32cTable(const uint8_t *p, size_t n, uint32_t crc) {
  static uint32_t table[256];
  static bool ready = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = c & 1 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)ready;
  for (size_t i = 0; i < n; ++i)
    crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
/// Bytes per stream of the three-stream CRC below.
constexpr size_t kCrcStripe = 8192;

/// The CRC register after kCrcStripe zero bytes, as a function of the
/// register before them: CRC is linear over GF(2), so it is a 32 x 32 bit
/// matrix, applied here a byte of the register at a time through four
/// tables (byteSlot[k][b] = the image of b << 8k).
struct CrcShift {
  uint32_t byteSlot[4][256];
  CrcShift() {
    // col[i]: the image of register bit i. One zero bit: the reflected
    // register shifts right, and bit 0 leaving it folds in the polynomial.
    uint32_t col[32], acc[32], tmp[32];
    for (int i = 0; i < 32; ++i)
      col[i] = i == 0 ? 0x82F63B78u : 1u << (i - 1);
    auto apply = [](const uint32_t *m, uint32_t v) {
      uint32_t r = 0;
      for (int i = 0; v; ++i, v >>= 1)
        if (v & 1)
          r ^= m[i];
      return r;
    };
    // col^(8 kCrcStripe) by squaring: acc accumulates the set bits' powers.
    for (int i = 0; i < 32; ++i)
      acc[i] = 1u << i;
    for (size_t bits = 8 * kCrcStripe; bits; bits >>= 1) {
      if (bits & 1) {
        for (int i = 0; i < 32; ++i)
          tmp[i] = apply(col, acc[i]);
        std::memcpy(acc, tmp, sizeof acc);
      }
      for (int i = 0; i < 32; ++i)
        tmp[i] = apply(col, col[i]);
      std::memcpy(col, tmp, sizeof col);
    }
    for (int k = 0; k < 4; ++k)
      for (uint32_t b = 0; b < 256; ++b)
        byteSlot[k][b] = apply(acc, b << (8 * k));
  }
  uint32_t operator()(uint32_t c) const {
    return byteSlot[0][c & 0xFF] ^ byteSlot[1][(c >> 8) & 0xFF] ^
           byteSlot[2][(c >> 16) & 0xFF] ^ byteSlot[3][c >> 24];
  }
};

/// CRC-32C with SSE 4.2's crc32 instruction, 8 bytes at a time (~10x the
/// table; the checksum would otherwise bound save and restore speed). The
/// instruction takes 3 cycles and issues every cycle, so one dependent
/// chain runs at a third of its rate: blocks of 3 x kCrcStripe bytes run as
/// three chains (the second and third from 0) joined by shifting the first
/// two over the bytes that follow them.
__attribute__((target("sse4.2"))) uint32_t crc32cHardware(const uint8_t *p, size_t n,
                                                         uint32_t crc) {
  static const CrcShift shift;
  uint64_t c = crc;
  auto word = [](const uint8_t *at) {
    uint64_t w;
    std::memcpy(&w, at, 8);
    return w;
  };
  for (; n >= 3 * kCrcStripe; n -= 3 * kCrcStripe, p += 3 * kCrcStripe) {
    uint64_t c1 = 0, c2 = 0;
    for (size_t at = 0; at < kCrcStripe; at += 8) {
      c = __builtin_ia32_crc32di(c, word(p + at));
      c1 = __builtin_ia32_crc32di(c1, word(p + kCrcStripe + at));
      c2 = __builtin_ia32_crc32di(c2, word(p + 2 * kCrcStripe + at));
    }
    c = shift(shift(static_cast<uint32_t>(c)) ^ static_cast<uint32_t>(c1)) ^
        static_cast<uint32_t>(c2);
  }
  for (; n >= 8; n -= 8, p += 8)
    c = __builtin_ia32_crc32di(c, word(p));
  crc = static_cast<uint32_t>(c);
  for (; n; --n, ++p)
    crc = __builtin_ia32_crc32qi(crc, *p);
  return crc;
}
#endif
} // namespace

uint32_t kv::crc32c(const void *data, size_t size, uint32_t crc) {
  const uint8_t *p = static_cast<const uint8_t *>(data);
  crc = ~crc;
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware)
    return ~crc32cHardware(p, size, crc);
#endif
  return ~crc32cTable(p, size, crc);
}
