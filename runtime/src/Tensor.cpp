//===- Tensor.cpp - Tensor views and element types --------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/Tensor.h"

#include <cmath>
#include <cstdint>

namespace attnc {

size_t dtypeSize(DType t) {
  switch (t) {
  case DType::f32:
  case DType::i32:
    return 4;
  case DType::bf16:
  case DType::f16:
    return 2;
  case DType::i64:
    return 8;
  case DType::q8:
  case DType::q4:
    return 1;
  }
  return 0;
}

size_t storageBytes(DType t, int64_t numel) {
  size_t n = static_cast<size_t>(numel);
  if (t == DType::q4)
    return n / 2 + n % 2;
  size_t bytes;
  // Saturates: a count whose bytes wrap would allocate too little.
  return __builtin_mul_overflow(n, dtypeSize(t), &bytes) ? SIZE_MAX : bytes;
}

const char *dtypeName(DType t) {
  switch (t) {
  case DType::f32: return "f32";
  case DType::bf16: return "bf16";
  case DType::f16: return "f16";
  case DType::i32: return "i32";
  case DType::i64: return "i64";
  case DType::q8: return "q8";
  case DType::q4: return "q4";
  }
  return "?";
}

bool parseDType(const std::string &name, DType &out) {
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::q8, DType::q4})
    if (name == dtypeName(t)) {
      out = t;
      return true;
    }
  return false;
}

int64_t TensorView::numel() const {
  for (int64_t s : shape)
    if (s == 0)
      return 0;
  int64_t n = 1;
  for (int64_t s : shape)
    if (__builtin_mul_overflow(n, s, &n))
      return INT64_MAX; // no real tensor: the checks reject it
  return n;
}

std::vector<int64_t> TensorView::effectiveStrides() const {
  if (!strides.empty())
    return strides;
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;)
    if (__builtin_mul_overflow(s[i], shape[i], &s[i - 1]))
      s[i - 1] = INT64_MAX; // no real tensor: the checks reject it
  return s;
}

namespace {
int64_t offsetOf(const TensorView &t, const int64_t *index) {
  if (!t.strides.empty()) {
    int64_t off = 0;
    for (size_t d = 0; d < t.strides.size(); ++d)
      off += index[d] * t.strides[d];
    return off;
  }
  int64_t off = 0; // row-major: Horner over the shape
  for (size_t d = 0; d < t.shape.size(); ++d)
    off = off * t.shape[d] + index[d];
  return off;
}
} // namespace

double TensorView::load(const int64_t *index) const {
  int64_t off = offsetOf(*this, index);
  switch (dtype) {
  case DType::f32: return static_cast<const float *>(data)[off];
  case DType::bf16: return bf16ToFloat(static_cast<const uint16_t *>(data)[off]);
  case DType::f16: return f16ToFloat(static_cast<const uint16_t *>(data)[off]);
  case DType::i32: return static_cast<const int32_t *>(data)[off];
  case DType::i64: return static_cast<double>(static_cast<const int64_t *>(data)[off]);
  case DType::q8: return static_cast<const int8_t *>(data)[off];
  case DType::q4: {
    uint8_t byte = static_cast<const uint8_t *>(data)[off >> 1];
    return static_cast<double>(((off & 1) ? byte >> 4 : byte & 15)) - 8;
  }
  }
  return 0;
}

void TensorView::store(const int64_t *index, double v) const {
  int64_t off = offsetOf(*this, index);
  switch (dtype) {
  case DType::f32: static_cast<float *>(data)[off] = static_cast<float>(v); break;
  case DType::bf16: static_cast<uint16_t *>(data)[off] = floatToBF16(static_cast<float>(v)); break;
  case DType::f16: static_cast<uint16_t *>(data)[off] = floatToF16(static_cast<float>(v)); break;
  case DType::i32: static_cast<int32_t *>(data)[off] = static_cast<int32_t>(v); break;
  case DType::i64: static_cast<int64_t *>(data)[off] = static_cast<int64_t>(v); break;
  case DType::q8:
    static_cast<int8_t *>(data)[off] =
        static_cast<int8_t>(std::nearbyint(std::fmin(std::fmax(v, -128.0), 127.0)));
    break;
  case DType::q4: {
    uint8_t code = static_cast<uint8_t>(std::nearbyint(std::fmin(std::fmax(v, -8.0), 7.0)) + 8);
    uint8_t &byte = static_cast<uint8_t *>(data)[off >> 1];
    byte = (off & 1) ? static_cast<uint8_t>((byte & 15) | (code << 4))
                     : static_cast<uint8_t>((byte & 0xf0) | code);
    break;
  }
  }
}

uint16_t floatToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::isnan(f))
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

float bf16ToFloat(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t floatToF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx >= 0x7f800000) // inf or nan
    return static_cast<uint16_t>(sign | 0x7c00 | (absx > 0x7f800000 ? 0x200 : 0));
  if (absx >= 0x477ff000) // rounds to >= 65520: overflow to inf
    return static_cast<uint16_t>(sign | 0x7c00);
  if (absx < 0x38800000) { // subnormal or zero in f16
    float a;
    std::memcpy(&a, &absx, 4);
    // 2^-24 is the f16 subnormal step; nearbyint rounds to even.
    uint32_t m = static_cast<uint32_t>(std::nearbyint(a * 16777216.0f));
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t exp = (absx >> 23) - 112;
  uint32_t mant = absx & 0x7fffff;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
    ++h;
  return static_cast<uint16_t>(sign | h);
}

float f16ToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float f;
  if (exp == 0) {
    f = std::ldexp(static_cast<float>(mant), -24);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    bits |= sign;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  uint32_t bits = exp == 31 ? (sign | 0x7f800000 | (mant << 13))
                            : (sign | ((exp + 112) << 23) | (mant << 13));
  std::memcpy(&f, &bits, 4);
  return f;
}

} // namespace attnc
